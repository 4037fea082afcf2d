"""Probe speed at VidSitu scale: time per row and seed (data, train, generation, metrics)
against the bound of the heads' forward+backward on in-memory tensors for the same samples.

    .venv/bin/python benchmarks/probe.py --work runs/bench-probe [--scale 0.1]

A random store (23.6k train / 1.3k valid clips x 5 events x 2304-d at --scale 1, float16) and
annotations in the release layout (synthetic verbs) are written once, without videos.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from hiermovie.config import from_dict
from hiermovie.contextualizer import Contextualizer, ContextualizerConfig
from hiermovie.datasets.synth import write_vidsitu
from hiermovie.datasets.vidsitu import VidSitu, verb_vocab
from hiermovie.feature_store import Provenance, VideoRecord, create_store, write_shard
from hiermovie.heads.fit import fit
from hiermovie.heads.models import VidSituHeads, head_loss
from hiermovie.workflows.probe import VidSituProbeConfig
from hiermovie.workflows.probe.vidsitu import run_vidsitu


def build(work: Path, train: int, valid: int, dim: int) -> tuple[Path, str]:
    root, url = work / "data", str(work / "features.zarr")
    if (work / "features.zarr" / "zarr.json").exists():
        return root, url
    write_vidsitu(root, train, valid, seed=0, render=False)
    create_store(url, Provenance(backbone="random-2304", dim=dim, dtype="float16"))
    rng = np.random.default_rng(0)
    clips = VidSitu(root, "train").clips + VidSitu(root, "valid").clips
    start = np.arange(5) * 2.0
    for i in range(0, len(clips), 2000):
        write_shard(url, [VideoRecord(c, rng.standard_normal((5, 1, dim), np.float32).astype(
            np.float16), start, start + 2, np.zeros((5, 0), np.int64))
            for c in clips[i:i + 2000]])
    return root, url


def bound(n: int, dim: int, width: int, verbs: int, seeds: int, epochs: int,
          batch: int) -> float:
    """The heads' forward+backward (and Adam) on in-memory event features, n clips."""
    ev = torch.randn(n, 5, dim + width)
    y, r = torch.randint(0, verbs, (n, 5)), torch.randint(0, 4, (n, 4))
    heads = VidSituHeads(list(range(seeds)), dim + width, (dim + width) // 2, verbs, 4)
    idx_of = torch.arange(n).expand(seeds, n)

    def loss(idx: torch.Tensor) -> torch.Tensor:
        clips = idx_of.gather(1, idx)
        vl, rl = heads(ev[clips])
        return head_loss(vl, rl, y[clips], r[clips], ["verb", "relation"])

    t = time.time()
    fit(heads, loss, n, epochs=epochs, lr=1e-3, batch_size=batch, seeds=list(range(seeds)))
    return time.time() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="runs/bench-probe")
    ap.add_argument("--scale", type=float, default=1.0, help="share of VidSitu's clip counts")
    ap.add_argument("--dim", type=int, default=2304)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--rows", default="backbone,random_frozen,pretrained_frozen")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    train, valid = round(23_600 * a.scale), round(1_300 * a.scale)
    t = time.time()
    root, url = build(work, train, valid, a.dim)
    print(f"store: {train} + {valid} clips x 5 x {a.dim} ({time.time() - t:.0f} s to build)")
    ctx = work / "ctx"
    if not (ctx / "config.json").exists():
        torch.manual_seed(0)
        Contextualizer(ContextualizerConfig(in_dim=a.dim)).save_pretrained(ctx)  # VidSitu's
    out = work / "probe"
    rows = a.rows.split(",")
    cfg = from_dict(VidSituProbeConfig, {
        "data": f"vidsitu:{root}", "store": url, "contextualizer": str(ctx), "rows": rows,
        "seeds": a.seeds, "lrs": [1e-3], "epochs": a.epochs, "eval_every": a.epochs,
        "role_epochs": max(1, a.epochs // 4), "out": str(out)})
    run_vidsitu(cfg)
    res = json.loads((out / "results.json").read_text())
    sec = res["seconds"]
    pool = train - round(0.2 * train)
    verbs = len(verb_vocab(VidSitu(root, "train")))
    b = sum(bound(pool, a.dim, 1024 if r != "backbone" else 0, verbs, a.seeds, a.epochs, 64)
            for r in rows)
    fits = len(rows) * a.seeds
    print(f"\nprobe, {len(rows)} rows x {a.seeds} seeds, {pool} labelled clips, {a.epochs} "
          f"epochs (this CPU, {torch.get_num_threads()} threads):")
    for k in ("data", "train", "generation", "metrics", "total"):
        print(f"  {k:10s} {sec.get(k, 0):8.1f} s   {sec.get(k, 0) / fits:7.1f} s per row x seed")
    print(f"  bound (heads fwd+bwd, same samples) {b:.1f} s; train / bound = "
          f"{sec['train'] / b:.2f} (target <= 1.5)")
    full = sec["total"] / a.scale
    print(f"  projected at VidSitu scale: {full / 60:.0f} min on this CPU (linear in clips); "
          f"a GPU at ~50x this CPU's dense throughput: ~{full / 50 / 60:.1f} min")


if __name__ == "__main__":
    main()
