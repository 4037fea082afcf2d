"""Contextualizer training step time with the real store loader vs the same batches in memory.

    .venv/bin/python benchmarks/pretrain_ctx.py [--videos 2000] [--dim 2304] [--steps 20]

Prints the step time both ways, the fraction of a step spent waiting for data (target <= 5%),
and the projected time of one epoch at VidSitu scale (23.6k clips x 5 events x 2304-d, batch 32)
with the default contextualizer (3 layers, width 1024, 8 heads, FFN 2048).
"""

import argparse
import tempfile
import time

import torch
from store_read import build  # the same random store as the read benchmark

from hiermovie.contextualizer import Contextualizer, ContextualizerConfig, MaskPredictor
from hiermovie.feature_store import FeatureStore, SequenceDataset, pad_collate
from hiermovie.workflows.pretrain_ctx.eval import loss_on
from hiermovie.workflows.training import StepBatches

VIDSITU_TRAIN_CLIPS = 23626


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=2304)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as d:
        url = f"{d}/s.zarr"
        build(url, a.videos, 5, a.dim, 256)
        ds = SequenceDataset(FeatureStore(url))
        sampler = StepBatches(a.batch, n=len(ds), seed=0)

        def batches(step: int) -> dict:
            return pad_collate([ds[k] for k in sampler[step]])
        model = MaskPredictor(Contextualizer(ContextualizerConfig(in_dim=a.dim)), a.dim).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        g = torch.Generator(device=device).manual_seed(0)

        def step(batch) -> None:
            loss = loss_on(model, batch, device, g)[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()

        for i in range(3):  # warm-up
            step(batches(i))
        wait = compute = 0.0
        for i in range(a.steps):
            t = time.perf_counter()
            b = batches(100 + i)
            t1 = time.perf_counter()
            step(b)
            wait += t1 - t
            compute += time.perf_counter() - t1
        loader_step = (wait + compute) / a.steps
        held = [batches(200 + i) for i in range(a.steps)]
        t = time.perf_counter()
        for b in held:
            step(b)
        memory_step = (time.perf_counter() - t) / a.steps
    name = torch.cuda.get_device_name() if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    per_epoch = VIDSITU_TRAIN_CLIPS / a.batch
    print(f"device: {name}; batch {a.batch} clips x 5 events x {a.dim}-d; default model")
    print(f"step with the store loader   {1000 * loader_step:8.1f} ms "
          f"(data wait {1000 * wait / a.steps:.2f} ms)")
    print(f"step with batches in memory  {1000 * memory_step:8.1f} ms")
    print(f"data wait fraction           {wait / (wait + compute):8.3%}")
    print(f"loader / in-memory step time {loader_step / memory_step:8.3f}")
    print(f"projected VidSitu epoch      {per_epoch * loader_step / 60:8.1f} min "
          f"({per_epoch:.0f} steps)")


if __name__ == "__main__":
    main()
