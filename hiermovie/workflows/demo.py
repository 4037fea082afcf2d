"""`hiermovie demo`: the whole chain on this machine, on the synthetic benchmark."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from hiermovie.config import from_dict, opt


@dataclass
class DemoConfig:
    workdir: str = opt("runs/demo", "where the benchmark, store, models and reports go")
    train: int = opt(240, "synthetic training clips")
    valid: int = opt(80, "synthetic validation clips")
    backbone: str = opt("tiny3d", "backbone name (random weights unless a path is given)")
    weights: str = opt("", "backbone weights")
    ctx_steps: int = opt(1500, "contextualizer pretraining steps")
    seeds: int = opt(3, "probe seeds")

    def __post_init__(self) -> None:
        if self.train < 10 or self.valid < 5:
            raise ValueError("train/valid: need at least 10 training and 5 validation clips")


def run_demo(cfg: DemoConfig) -> int:
    """Synthetic benchmark -> extract -> pretrain-ctx -> probe, with timings."""
    from hiermovie.workflows.extract import ExtractConfig, run_extract
    from hiermovie.workflows.pretrain_ctx import PretrainCtxConfig, run_pretrain_ctx
    from hiermovie.workflows.probe import ProbeConfig, run_probe
    from hiermovie.workflows.synth import SynthConfig, run_synth

    work = Path(cfg.workdir)
    data, store = work / "synth", str(work / "features.zarr")
    timings: dict[str, float] = {}

    def step(name: str, fn, job_cfg) -> None:
        print(f"\n== {name}")
        t = time.time()
        rc = fn(job_cfg)
        timings[name] = round(time.time() - t, 1)
        if rc:
            raise SystemExit(rc)

    if not (data / "vidsitu_annotations" / "vinfo_files" / "vinfo_valid_lb.json").exists():
        step("synth", run_synth, SynthConfig(out=str(data), train=cfg.train, valid=cfg.valid))
    step("extract", run_extract, from_dict(ExtractConfig, {
        "input": f"vidsitu:{data}", "store": store,
        "backbone": {"name": cfg.backbone, "weights": cfg.weights}}))
    step("pretrain-ctx", run_pretrain_ctx, from_dict(PretrainCtxConfig, {
        "store": store, "out": str(work / "ctx"), "steps": cfg.ctx_steps, "lr": 5e-4,
        "warmup": 50, "val_every": 250, "resume": True,
        "model": {"width": 256, "ffn": 512, "heads": 4}}))
    step("probe", run_probe, from_dict(ProbeConfig, {
        "data": f"vidsitu:{data}", "store": store, "seeds": cfg.seeds,
        "contextualizer": str(work / "ctx" / "contextualizer"), "out": str(work / "probe")}))
    total = sum(timings.values())
    table = (work / "probe" / "results.md").read_text()
    ctx = json.loads((work / "ctx" / "summary.json").read_text())
    report = (f"# hiermovie demo\n\n{table}\n"
              f"Contextualizer validation loss {ctx['val_loss']:.4f}: "
              f"{ctx['ratio_to_mean_feature']:.3f}x predicting the mean feature, "
              f"{ctx['ratio_to_untrained']:.4f}x an untrained contextualizer.\n\n"
              f"Timings (s): {json.dumps(timings)}; total {total:.0f} s.\n")
    (work / "demo.md").write_text(report)
    print("\n" + report)
    return 0
