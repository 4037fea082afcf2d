"""`hiermovie probe --data lvu:ROOT`: the nine LVU tasks on windows of segment features."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from hiermovie.config import ConfigError
from hiermovie.datasets import lvu
from hiermovie.feature_store import FeatureStore
from hiermovie.heads import lvu as lh
from hiermovie.workflows.tables import cell, spread

if TYPE_CHECKING:
    from hiermovie.workflows.probe import ProbeConfig


@torch.no_grad()
def video_sequences(store: FeatureStore, ids: list[str], ctx: torch.nn.Module | None,
                    mean: torch.Tensor, std: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per video [S, F]: standardised pooled features, next to the frozen contextualizer's
    outputs (computed over the whole video, positions from segment start times)."""
    out = {}
    for vid in ids:
        feats = torch.from_numpy(store.get(vid).astype(np.float32))[None]
        own = (feats.mean(2)[0] - mean) / std
        if ctx is not None:
            start = torch.from_numpy(store.times(vid)[0]).float()[None]
            h = ctx(feats, torch.ones(feats.shape[:2], dtype=torch.bool), None, start)[0]
            own = torch.cat([own, h], dim=-1)
        out[vid] = own
    return out


def run_lvu(cfg: ProbeConfig, root: str) -> int:
    from hiermovie.workflows.probe import _contextualizers

    t0 = time.time()
    store = FeatureStore(cfg.store, storage_options=cfg.storage_options or None)
    have = set(store.videos())
    tasks = cfg.lvu_tasks or list(lvu.TASKS)
    data, coverage = {}, {}
    for task in tasks:
        splits = {s: lvu.load_task(root, task, s) for s in ("train", "test")}
        kept = {s: [e for e in ex if e.video_id in have] for s, ex in splits.items()}
        coverage[task] = {s: f"{len(kept[s])}/{len(splits[s])}" for s in splits}
        if kept["train"] and kept["test"]:
            data[task] = kept
    if not data:
        raise ConfigError(f"{cfg.store}: no features for the LVU videos of {root}")
    ids = sorted({e.video_id for d in data.values() for ex in d.values() for e in ex})
    all_pooled = torch.cat([torch.from_numpy(store.get(v).astype(np.float32)).mean(1)
                            for v in ids])
    mean, std = all_pooled.mean(0), all_pooled.std(0) + 1e-6
    prov = store.provenance
    rows = _contextualizers(cfg, prov.dim, prov.tokens_per_segment)
    scores: dict[str, dict[str, list[float]]] = {}
    for row, ctx in rows.items():
        seqs = video_sequences(store, ids, ctx, mean, std)
        for task, d in data.items():
            classes = lvu.TASKS[task]
            xs, ms, own = lh.window_batch([seqs[e.video_id] for e in d["train"]],
                                          cfg.lvu_window)
            y = torch.tensor([d["train"][i].target for i in own.tolist()])
            xt, mt, ot = lh.window_batch([seqs[e.video_id] for e in d["test"]], cfg.lvu_window)
            target = np.array([e.target for e in d["test"]])
            for seed in range(cfg.seeds):
                head = lh.fit_window_head(xs, ms, y, classes, kind=cfg.head, epochs=cfg.epochs,
                                          lr=cfg.lr, batch_size=cfg.batch_size, seed=seed)
                pred = lh.video_predictions(head, xt, mt, ot, len(d["test"]), classes)
                scores.setdefault(row, {}).setdefault(task, []).append(
                    lh.task_score(pred, target, classes))
        print(f"probe: row {row!r} done ({time.time() - t0:.0f} s)")
    table = _report(cfg, scores, coverage, prov.backbone, Path(cfg.out), time.time() - t0)
    print(table)
    return 0


def _report(cfg: ProbeConfig, scores: dict[str, dict[str, list[float]]], coverage: dict,
            backbone: str, out: Path, seconds: float) -> str:
    out.mkdir(parents=True, exist_ok=True)
    tasks = [t for t in lvu.TASKS if any(t in r for r in scores.values())]
    regression = {t for t in tasks if lvu.TASKS[t] is None}
    means = {r: {t: float(np.mean(v)) for t, v in s.items()} for r, s in scores.items()}
    ranks = lh.rank_summary(means, regression)
    names = {"none": "None", "random": "Random init (frozen)",
             "pretrained": "Mask prediction (frozen)"}
    head = [f"{t} ({'MSE' if t in regression else 'acc'})" for t in tasks]
    lines = [f"Backbone `{backbone}`; LVU test split, videos with features per task: "
             + ", ".join(f"{t} {coverage[t]['test']}" for t in tasks)
             + f"; {spread(cfg.seeds)}; windows of {cfg.lvu_window} segments.",
             "", "| Contextualizer | " + " | ".join(head) + " | Top-1 rank | Mean rank |",
             "|---|" + "---|" * (len(tasks) + 2)]
    for row, s in scores.items():
        cells = []
        for t in tasks:
            cells.append(cell(s[t], 1, 2) if t in regression else cell(s[t]))
        r = ranks[row]
        lines.append(f"| {names[row]} | " + " | ".join(cells)
                     + f" | {r['top1_rank']:.0f}/{len(tasks)} | {r['mean_rank']:.2f} |")
    table = "\n".join(lines)
    (out / "results.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps({
        "coverage": coverage, "backbone": backbone, "seconds": seconds, "ranks": ranks,
        "rows": {r: {t: {"mean": float(np.mean(v)), "std": float(np.std(v)), "runs": v}
                     for t, v in s.items()} for r, s in scores.items()}}, indent=2))
    return table
