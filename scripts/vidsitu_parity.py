"""Score held-out VidSitu prediction files with hiermovie and with the official evaluator.

    python scripts/vidsitu_parity.py --official PATH [--out tests/data/vidsitu_parity]

PATH holds the official code, which hiermovie does not ship: `vidsitu_code/evl_fns.py` from
TheShadow29/VidSitu, and importable `coval` and `pycocoevalcap` (as VidSitu's install script
sets up). The script writes a synthetic validation split (annotations only), prediction files
that exercise the evaluator's edge cases, the official evaluator's scores, and hiermovie's; it
prints the largest difference per file and exits 1 if any exceeds 1e-9. The folder it writes is
what tests/test_vidsitu_parity.py checks hiermovie against on every CI run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pickle
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from hiermovie.datasets.synth import write_vidsitu
from hiermovie.datasets.synth_world import RELATIONS, VERB_LIST
from hiermovie.datasets.vidsitu import EVENTS, VidSitu, srl_references
from hiermovie.heads import vidsitu_metrics as vm

TOL = 1e-9


def predictions(ds: VidSitu, seed: int = 0) -> dict[str, tuple[str, list[dict]]]:
    """name -> (task, entries). Each file mixes right and wrong answers and the edge cases:
    repeated ann_idx (the first entry counts), top-k lists shorter and longer than 5, missing
    and empty role phrases, variant phrases that split entities, a clip without Ev1."""
    rng = np.random.default_rng(seed)
    verbs = [f"{v}.01" for v in VERB_LIST]
    out: dict[str, tuple[str, list[dict]]] = {}

    def ranked(truth: str, p_right: float) -> list[str]:
        others = [str(v) for v in rng.permutation(verbs) if v != truth]
        k = int(rng.integers(1, 8))  # cut to 5 by the evaluator
        return ([truth] + others)[:k] if rng.random() < p_right else others[:k]

    for name, p in (("verbs_good", 0.8), ("verbs_poor", 0.3)):
        entries = [{"ann_idx": i, "pred_vbs_ev": [ranked(v, p) for v in ds.majority_verbs(c)]}
                   for i, c in enumerate(ds.clips)]
        entries += [{"ann_idx": int(i), "pred_vbs_ev": [verbs[:5]] * 5}
                    for i in rng.choice(len(ds), 5, replace=False)]  # repeats: ignored
        out[name] = ("verb", entries)

    for name, p in (("relations_good", 0.8), ("relations_poor", 0.3)):
        entries = []
        for i, c in enumerate(ds.clips):
            pairs = [[g if rng.random() < p else str(rng.choice(RELATIONS)) for g in gts]
                     for gts in ds.relations(c)]
            entries.append({"ann_idx": i, "pred_evrels_ev": pairs})
        entries.insert(0, {"ann_idx": 3, "pred_evrels_ev": [["NoRel"] * 3] * 4})  # first wins
        out[name] = ("relation", entries)

    refs = srl_references(ds)
    for name, p in (("roles_good", 0.8), ("roles_poor", 0.3)):
        entries = []
        for i, c in enumerate(ds.clips):
            truth = ds.roles(c, record=int(rng.integers(len(ds.records[c]))))
            hyp = {}
            for ev, roles in zip(EVENTS, truth, strict=True):
                hyp[ev] = {}
                for role, phrase in roles.items():
                    u = rng.random()
                    if u < p:
                        hyp[ev][role] = phrase
                    elif u < p + 0.1:
                        continue  # missing role: scored as ""
                    elif u < p + 0.15:
                        hyp[ev][role] = ""
                    else:  # another clip's phrase for the same role
                        other = refs[int(rng.integers(len(refs)))][0][ev]["Args"]
                        hyp[ev][role] = next(iter(other.values()))
            entries.append({"ann_idx": i, "vb_output": hyp})
        # a clip without Ev1: its slots score "" and it is left out of LEA
        entries[1] = {"ann_idx": 1, "vb_output": {ev: {} for ev in EVENTS[1:]}}
        entries.append({"ann_idx": 0, "vb_output": {}})  # a repeat: ignored
        out[name] = ("roles", entries)
    return out


def add_records(ann: Path, seed: int = 1) -> None:
    """Give every fourth clip 2 more annotation records, at the end of the file: relations read
    only the first 3 records of a clip, roles drop position 3 of the seed-5 permutation."""
    rng = np.random.default_rng(seed)
    path = ann / "vseg_ann_files" / "vsann_valid_lb.json"
    records = json.loads(path.read_text())
    seen: dict[str, dict] = {}
    for rec in records:
        seen.setdefault(rec["Ev1"]["vid_seg_int"], rec)
    extra = []
    for clip in list(seen)[::4]:
        for _ in range(2):
            rec = json.loads(json.dumps(seen[clip]))
            for ev in EVENTS:
                if "EvRel" in rec[ev]:
                    rec[ev]["EvRel"] = str(rng.choice(RELATIONS))
                for role in rec[ev]["Args"]:
                    if rng.random() < 0.5:
                        rec[ev]["Args"][role] = f"extra phrase {int(rng.integers(3))}"
            extra.append(rec)
    path.write_text(json.dumps(records + extra))


def hiermovie_scores(ds: VidSitu, task: str, entries: list[dict]) -> dict[str, float]:
    result = vm.SCORERS[task](entries, ds)
    return {k: float(v) for k, v in result.items() if not isinstance(v, dict)}


def _import_official(path: Path) -> types.ModuleType:
    # evl_fns imports its CLI and config helpers at module level; scoring never uses them
    for name in ("fire", "yacs", "yacs.config"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["yacs.config"].CfgNode = dict
    # only CIDEr and ROUGE-L are read; BLEU/METEOR are built at start-up (METEOR needs Java)
    meteor = types.ModuleType("pycocoevalcap.meteor.meteor")
    meteor.Meteor = object
    sys.modules["pycocoevalcap.meteor.meteor"] = meteor
    bleu = importlib.import_module("pycocoevalcap.bleu.bleu")
    bleu.Bleu = lambda n=4, verbose=0: None
    sys.path.insert(0, str(path))
    sys.path.insert(0, str(path / "vidsitu_code"))
    return importlib.import_module("evl_fns")


def official_scores(evl, ann: Path, task: str, pred_file: Path) -> dict[str, float]:
    files = {"split_files_lb": {"valid": ann / "split_files" / "vseg_split_valid_lb.json"},
             "vinfo_files_lb": {"valid": ann / "vinfo_files" / "vinfo_valid_lb.json"},
             "vsitu_ann_files_lb": {"valid": ann / "vseg_ann_files" / "vsann_valid_lb.json"}}
    cfg = SimpleNamespace(ds=SimpleNamespace(vsitu=SimpleNamespace(**files)))
    if task == "verb":
        out = evl.EvlFn_Vb(cfg, {}, ["acc"]).simple_acc(str(pred_file), "valid")
    elif task == "relation":
        out = evl.EvlFn_EvRel(cfg, {}, ["Top_1"]).simple_acc_evrel(str(pred_file), "valid")
    else:
        out = evl.EvalFnCap(cfg, None, met_keys=["cider", "rouge"]).eval_cap_mets(
            str(pred_file), "valid")
    return {k: float(v) for k, v in out.items()
            if isinstance(v, (int, float, np.floating)) and "sent" not in k}


def compare(ours: dict[str, float], official: dict[str, float]) -> tuple[float, list[str]]:
    """Largest |difference| over the metrics both report, and those metrics."""
    keys = sorted(set(ours) & set(official))
    return max(abs(ours[k] - official[k]) for k in keys), keys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("tests/data/vidsitu_parity"))
    ap.add_argument("--clips", type=int, default=40)
    args = ap.parse_args()
    evl = _import_official(args.official.resolve())
    write_vidsitu(args.out, 0, args.clips, render=False)
    ann = args.out / "vidsitu_annotations"
    for train_file in ann.glob("*/*_train_lb.json"):
        train_file.unlink()
    add_records(ann)
    ds = VidSitu(args.out, "valid")
    report, worst = {}, 0.0
    for name, (task, entries) in predictions(ds).items():
        path = args.out / f"{name}.pkl"
        path.write_bytes(pickle.dumps(entries))
        official = official_scores(evl, ann, task, path)
        diff, keys = compare(hiermovie_scores(ds, task, entries), official)
        worst = max(worst, diff)
        report[name] = {"task": task, "official": {k: official[k] for k in keys},
                        "max_abs_diff": diff}
        print(f"{name:16s} {task:9s} {len(keys):2d} metrics  max |diff| {diff:.3g}")
    (args.out / "official_scores.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"largest difference {worst:.3g} (tolerance {TOL})")
    return int(worst > TOL)


if __name__ == "__main__":
    sys.exit(main())
