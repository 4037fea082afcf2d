"""VidSitu annotations, read exactly as released (`vidsitu_annotations/`).

Layout: split_files/vseg_split_{split}_lb.json (clip ids; list order = `ann_idx`),
vinfo_files/vinfo_{split}_lb.json (per-clip info; valid adds 10 annotators' verbs per event in
`vbid_lst`/`vb_lst`), vseg_ann_files/vsann_{split}_lb.json (records of Ev1..Ev5 with Verb,
VerbID, Arg_List, Args and EvRel relative to Ev3; several records per clip in valid).
Videos are looked up as `{root}/vsitu_video_trimmed_dir/{clip_id}.mp4`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hiermovie.datasets.manifest import ManifestError, VideoItem

EVENTS = ("Ev1", "Ev2", "Ev3", "Ev4", "Ev5")
RELATION_PAIRS = ("Ev1", "Ev2", "Ev4", "Ev5")  # each relative to Ev3
# the same as positions among a clip's five events: the related events and the one they relate to
RELATED_EVENTS = tuple(int(ev[2:]) - 1 for ev in RELATION_PAIRS)  # (0, 1, 3, 4)
CENTRE_EVENT = 2
RELATIONS = ("Causes", "Reaction To", "Enables", "NoRel")
SCORED_ROLES = ("Arg0", "Arg1", "Arg2", "ALoc", "AScn")
_ARGM = {"location": "ALoc", "manner": "AMnr", "purpose": "APrp", "direction": "ADir",
         "goal": "AGol"}
VIDEO_DIR = "vsitu_video_trimmed_dir"


def short_role(long_name: str) -> str:
    """'Arg0 (thrower)' -> 'Arg0', 'Scene of the Event' -> 'AScn', 'ArgM (location)' -> 'ALoc'."""
    name = long_name.strip()
    if name.startswith("ArgM"):
        inner = name[name.find("(") + 1:name.rfind(")")].strip().lower()
        if inner in _ARGM:
            return _ARGM[inner]
    elif name.startswith("Arg") and len(name) > 3 and name[3].isdigit():
        return f"Arg{name[3]}"
    elif name == "Scene of the Event":
        return "AScn"
    raise ValueError(f"unknown VidSitu role name {long_name!r}")


def _ann_dir(root: str | Path) -> Path:
    root = Path(root)
    return root / "vidsitu_annotations" if (root / "vidsitu_annotations").is_dir() else root


def _load(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{path}: missing (is this a vidsitu_annotations folder?)") from None
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: not valid JSON ({e})") from None


class VidSitu:
    """One split: clip ids in `ann_idx` order, their info and annotation records."""

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.root = Path(root)
        ann = _ann_dir(root)
        self.split = split
        self.clips: list[str] = list(_load(ann / "split_files" / f"vseg_split_{split}_lb.json"))
        info_path = ann / "vinfo_files" / f"vinfo_{split}_lb.json"
        infos = _load(info_path) if info_path.exists() else []
        self.info = {d["vid_seg_int"]: d for d in infos}
        rec_name = f"vsann_{split}_lb.json"
        if not (ann / "vseg_ann_files" / rec_name).exists():
            rec_name = f"vsann_{split}_noann_lb.json"
        self.records: dict[str, list[dict]] = {}
        rec_path = ann / "vseg_ann_files" / rec_name
        if rec_path.exists():
            for rec in _load(rec_path):
                self.records.setdefault(rec["Ev1"]["vid_seg_int"], []).append(rec)

    def __len__(self) -> int:
        return len(self.clips)

    def video_path(self, clip: str) -> Path:
        return self.root / VIDEO_DIR / f"{clip}.mp4"

    def verbs(self, clip: str, record: int = 0) -> list[str]:
        """Verb ids (e.g. 'speak.01') of the 5 events in one record."""
        return [self.records[clip][record][ev]["VerbID"] for ev in EVENTS]

    def verb_votes(self, clip: str) -> list[list[str]]:
        """The 10 annotators' verb ids per event (valid split)."""
        votes = self.info[clip]["vbid_lst"]
        return [list(votes[ev][:10]) for ev in EVENTS]

    def majority_verbs(self, clip: str) -> list[str]:
        """Training target per event: the most voted verb where votes exist, else record 0."""
        if "vbid_lst" in self.info.get(clip, {}):
            return [Counter(v).most_common(1)[0][0] for v in self.verb_votes(clip)]
        return self.verbs(clip)

    def roles(self, clip: str, record: int = 0) -> list[dict[str, str]]:
        """Per event: short role name -> phrase, in `Arg_List` order."""
        out = []
        for ev in EVENTS:
            e = self.records[clip][record][ev]
            order = sorted(e["Arg_List"], key=lambda k: int(e["Arg_List"][k]))
            out.append({short_role(k): e["Args"][k] for k in order if k in e["Args"]})
        return out

    def relations(self, clip: str, records: int = 3) -> list[list[str]]:
        """Per pair (Ev1,Ev2,Ev4,Ev5 vs Ev3) the labels of the first `records` records."""
        recs = self.records[clip][:records]
        return [[r[ev]["EvRel"] for r in recs] for ev in RELATION_PAIRS]

    def coverage(self, available: set[str]) -> dict[str, int]:
        found = sum(c in available for c in self.clips)
        return {"annotated": len(self.clips), "available": found,
                "missing": len(self.clips) - found}


def verb_vocab(train: VidSitu) -> list[str]:
    """All verb ids used in training records, most frequent first (1560 in the release)."""
    counts = Counter(v for clip in train.clips if clip in train.records
                     for v in train.verbs(clip))
    return [v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def videos(root: str, only: str = "") -> list[VideoItem]:
    """Every clip of every split present (or of split `only`) whose video file exists."""
    ann = _ann_dir(root)
    splits = sorted(p.name[len("vseg_split_"):-len("_lb.json")]
                    for p in (ann / "split_files").glob("vseg_split_*_lb.json"))
    if only and only not in splits:
        raise ManifestError(f"{ann}: no split {only!r} (found: {', '.join(splits) or 'none'})")
    splits = [only] if only else splits
    if not splits:
        raise ManifestError(f"{ann}: no split_files/vseg_split_*_lb.json")
    items: dict[str, VideoItem] = {}
    total = 0
    for split in splits:
        ds = VidSitu(root, split)
        total += len(ds)
        for clip in ds.clips:
            path = ds.video_path(clip)
            if path.exists():
                items.setdefault(clip, VideoItem(clip, str(path)))
    print(f"vidsitu: {len(items)} of {total} annotated clips found in {Path(root) / VIDEO_DIR} "
          f"(splits: {', '.join(splits)})")
    return list(items.values())


def srl_references(ds: VidSitu, ix_gt: int = 3, n_refs: int = 3) -> list[list[dict]]:
    """Per ann_idx: the reference records, as the evaluator picks them (seed 5 permutation of
    the clip's records in file order, drop position `ix_gt`, keep the first `n_refs`)."""
    rng = np.random.RandomState(5)  # the evaluator's np.random.seed(5), without the global
    shuffled = [[ds.records[c][r] for r in rng.permutation(len(ds.records[c]))]
                for c in ds.clips]
    return [[r for j, r in enumerate(recs) if j != ix_gt][:n_refs] for recs in shuffled]


@dataclass
class ValidTruth:
    """The validation clips' annotations, as the official evaluator reads them."""

    ann: list[int]  # each clip's ann_idx
    verb_votes: list[list[list[str]]]  # per clip and event: the annotators' verb ids
    verbs: list[list[str]]  # per clip: its first record's verbs
    relations: list[list[list[str]]]  # per clip and event pair: the first 3 records' labels
    refs: list  # per clip: its role references (with `roles`)
    groups: list[list[str]] | None  # per clip and event: a synthetic world's event group

    @classmethod
    def read(cls, valid: VidSitu, ids: list[str], roles: bool,
             groups: dict[str, list[str]] | None = None) -> ValidTruth:
        """The annotations of `valid`'s clips `ids`; the role references with `roles`."""
        index = {c: i for i, c in enumerate(valid.clips)}
        ann = [index[c] for c in ids]
        # every clip's references drawn at once, as the evaluator draws them (per clip: N^2)
        refs = srl_references(valid) if roles else []
        return cls(ann, [valid.verb_votes(c) for c in ids], [valid.verbs(c) for c in ids],
                   [valid.relations(c, records=3) for c in ids],
                   [refs[i] for i in ann] if roles else [],
                   [groups[c] for c in ids] if groups else None)
