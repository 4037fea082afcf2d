"""Kinetics-400/600/700 as the official downloader lays it out (cvdfoundation/kinetics-dataset).

    ROOT/annotations/{train,val,test}.csv   label,youtube_id,time_start,time_end,split
    ROOT/{train,val,test}/{youtube_id}_{time_start:06d}_{time_end:06d}.mp4

Videos may sit flat in their split's folder or one folder per label (or deeper); any video
suffix is accepted, since downloads re-encode to whatever the source gave. Partial downloads
are the norm (videos removed from YouTube): clips without a file are counted, not fatal, and the
coverage is printed. A split whose CSV has no `label` column (Kinetics-700's test set) yields
unlabelled clips.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from hiermovie.datasets.manifest import VIDEO_SUFFIXES, ManifestError, VideoItem

SPLITS = ("train", "val", "test")
COLUMNS = ("youtube_id", "time_start", "time_end")


def clip_name(youtube_id: str, start: int, end: int) -> str:
    """The file stem the official downloader writes for one annotated clip."""
    return f"{youtube_id}_{start:06d}_{end:06d}"


@dataclass(frozen=True)
class Clip:
    name: str  # the file stem, also the clip's video id
    label: str | None
    duration_s: float


class Kinetics:
    """One split: its annotated clips, the files found for them and the label vocabulary."""

    def __init__(self, root: str | Path, split: str) -> None:
        self.root, self.split = Path(root), split
        csv_path = self.root / "annotations" / f"{split}.csv"
        if not csv_path.is_file():
            raise ManifestError(f"{csv_path}: no such annotation file (kinetics:ROOT expects "
                                "ROOT/annotations/{train,val,test}.csv)")
        self.clips = _read_csv(csv_path)
        self.paths = _index(self.root / split)

    def path(self, clip: Clip) -> Path | None:
        return self.paths.get(clip.name)

    @property
    def available(self) -> list[Clip]:
        return [c for c in self.clips if c.name in self.paths]

    @property
    def labels(self) -> list[str]:
        return sorted({c.label for c in self.clips if c.label is not None})


def _read_csv(path: Path) -> list[Clip]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {', '.join(missing)} (expected "
                                "label,youtube_id,time_start,time_end,split)")
        clips, seen = [], set()
        for line, row in enumerate(reader, start=2):
            try:
                start, end = int(row["time_start"]), int(row["time_end"])
            except (TypeError, ValueError):
                raise ManifestError(f"{path}:{line}: time_start/time_end must be whole seconds, "
                                    f"got {row['time_start']!r}, {row['time_end']!r}") from None
            if end <= start:
                raise ManifestError(f"{path}:{line}: time_end {end} is not after time_start "
                                    f"{start}")
            name = clip_name(row["youtube_id"], start, end)
            if name in seen:
                raise ManifestError(f"{path}:{line}: clip {name} listed twice")
            seen.add(name)
            clips.append(Clip(name, row.get("label") or None, float(end - start)))
    return clips


def _index(folder: Path) -> dict[str, Path]:
    """Every video under the split's folder by its stem (flat, per label, or deeper)."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.rglob("*"))
            if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()}


def videos(root: str, only: str = "") -> list[VideoItem]:
    """The clips of every split with an annotation file (or of split `only`) whose video
    exists, labelled; coverage printed. Each item's one segment is the whole trimmed clip."""
    ann = Path(root) / "annotations"
    splits = [s for s in SPLITS if (ann / f"{s}.csv").is_file()]
    if only and only not in splits:
        raise ManifestError(f"{ann}: no {only}.csv (found: "
                            f"{', '.join(s + '.csv' for s in splits) or 'none'})")
    splits = [only] if only else splits
    if not splits:
        raise ManifestError(f"{ann}: no train.csv, val.csv or test.csv")
    items: list[VideoItem] = []
    counts = []
    for split in splits:
        ds = Kinetics(root, split)
        found = ds.available
        items += [VideoItem(c.name, str(ds.path(c)), ((0.0, c.duration_s),), c.label)
                  for c in found]
        counts.append(f"{split} {len(found)} of {len(ds.clips)}")
    print(f"kinetics: clips found in {root}: {'; '.join(counts)}")
    if not items:
        raise ManifestError(f"{root}: none of the annotated clips has a video file")
    return items
