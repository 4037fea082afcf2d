"""Does self-supervised pretraining of the backbone help? Linear verb probe, trained vs random.

    .venv/bin/python benchmarks/pretrain_backbone.py [--work runs/bench_bb] [--steps 200]
        [--seeds 3] [--objective cvrl]

On the synthetic benchmark (rendered into WORK/synth if missing): for each seed, pretrain tiny3d
with `pretrain-backbone` on the training clips (no labels; the demo's recipe: 64 px, local
positives, static negatives), extract features with it and with the same architecture at random
initialisation (same seed, same 64 px input), and train a linear verb probe on each store.
Prints verb Acc@1 mean +- std over the seeds for both, the gap in units of the larger std
(target > 2) and the time per stage. Finished stages are reused on a rerun.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from hiermovie.config import from_dict
from hiermovie.workflows.extract import ExtractConfig, run_extract
from hiermovie.workflows.presets import BACKBONE_RECIPE
from hiermovie.workflows.pretrain_backbone import PretrainBackboneConfig, run_pretrain_backbone
from hiermovie.workflows.probe import VidSituProbeConfig
from hiermovie.workflows.probe.vidsitu import run_vidsitu
from hiermovie.workflows.steps import Steps
from hiermovie.workflows.synth import SynthConfig, run_synth

METRIC = "verb/Per_Ev_Top_1"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="runs/bench_bb")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--objective", default="cvrl", choices=["cvrl", "rho_byol"])
    a = ap.parse_args()
    work = Path(a.work)
    data = work / "synth"
    step = Steps()
    timings = step.seconds

    step("synth", data / "vidsitu_annotations" / "vinfo_files" / "vinfo_valid_lb.json",
         run_synth, SynthConfig(out=str(data)))
    acc: dict[str, list[float]] = {"random": [], "trained": []}
    for seed in range(a.seeds):
        bb = work / f"{a.objective}_seed{seed}"
        step("pretrain-backbone", bb / "backbone.safetensors", run_pretrain_backbone,
             from_dict(PretrainBackboneConfig, {
                 **BACKBONE_RECIPE, "input": f"vidsitu:{data}", "out": str(bb),
                 "objective": a.objective, "steps": a.steps, "seed": seed, "resume": True,
                 "progress": False}))
        for row, name in (("random", "tiny3d"), ("trained", f"trained/{bb}")):
            store = work / f"{row}_{a.objective}_seed{seed}.zarr"
            step("extract", Path(f"{store}.report.json"), run_extract, from_dict(ExtractConfig, {
                "input": f"vidsitu:{data}", "store": str(store), "progress": False,
                "backbone": {"name": name, "seed": seed,
                             "input_size": BACKBONE_RECIPE["backbone"]["input_size"]}}))
            probe = work / f"probe_{row}_{a.objective}_seed{seed}"
            step("probe", probe / "results.json", run_vidsitu, from_dict(VidSituProbeConfig, {
                "data": f"vidsitu:{data}", "store": str(store), "rows": ["backbone"],
                "tasks": ["verb"], "head": "linear", "seeds": 1, "out": str(probe),
                "progress": False}))
            cells = json.loads((probe / "results.json").read_text())["cells"]
            acc[row].append(next(c["values"][0] for c in cells if c["metric"] == METRIC))

    mean = {k: float(np.mean(v)) for k, v in acc.items()}
    std = {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in acc.items()}
    gap = mean["trained"] - mean["random"]
    print(f"\nlinear verb probe, Acc@1 on the synthetic validation clips, {a.seeds} seeds, "
          f"{a.objective}, {a.steps} steps x {BACKBONE_RECIPE['batch_size']} samples")
    for k in acc:
        print(f"  {k:8s} {100 * mean[k]:.1f} +- {100 * std[k]:.1f}   "
              f"({', '.join(f'{100 * x:.1f}' for x in acc[k])})")
    print(f"  gap {100 * gap:+.1f} points = {gap / max(std.values(), default=1e-9):.1f}x the "
          f"larger std (target > 2); trained/random = {mean['trained'] / mean['random']:.2f}")
    print(f"  time (s, this run): {json.dumps({k: round(v) for k, v in timings.items()})}")


if __name__ == "__main__":
    main()
