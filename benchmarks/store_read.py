"""Feature-store read throughput vs. indexing a numpy array in memory, on the same data.

    .venv/bin/python benchmarks/store_read.py [--videos 20000] [--dim 768]

Prints segments/s and MB/s for: the SequenceDataset over a fresh store (first pass: chunks read
from the page cache and decoded), a second pass (in-memory shard cache), the store without a
cache (one slice read per video), and the same per-item work on a numpy array in memory.
"""

import argparse
import tempfile
import time

import numpy as np
import torch

from hiermovie.feature_store import (
    FeatureStore,
    Provenance,
    SequenceDataset,
    VideoRecord,
)


def build(url: str, videos: int, segs: int, dim: int, per_shard: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    all_feats = rng.standard_normal((videos, segs, 1, dim)).astype(np.float16)
    start = np.arange(segs) * 2.0
    with FeatureStore.open(url, "a") as store:
        store.create(Provenance(backbone="bench", dim=dim), chunk_segments=4096)
        for s in range(0, videos, per_shard):
            store.write([VideoRecord(f"v{i:07d}", all_feats[i], start, start + 2,
                                     np.zeros((segs, 0), np.int64))
                         for i in range(s, min(s + per_shard, videos))])
    return all_feats


def consume(items) -> int:
    n = 0
    for it in items:
        n += it["features"].shape[0]
    return n


def timed(fn):
    t = time.perf_counter()
    n = fn()
    return n, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=20000)
    ap.add_argument("--segments", type=int, default=5)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--per-shard", type=int, default=256)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        url = f"{d}/bench.zarr"
        feats = build(url, a.videos, a.segments, a.dim, a.per_shard)
        seg_bytes = a.dim * 2
        flat = feats.reshape(-1, 1, a.dim)
        start = np.tile(np.arange(a.segments) * 2.0, a.videos)

        def numpy_items():
            for i in range(a.videos):
                lo = i * a.segments
                yield {"video_id": f"v{i:07d}",
                       "features": torch.from_numpy(np.ascontiguousarray(flat[lo:lo + a.segments])),
                       "start_s": torch.from_numpy(start[lo:lo + a.segments]), "first": 0}

        store = FeatureStore(url)
        ds = SequenceDataset(store)
        rows = {}
        rows["numpy in memory"] = timed(lambda: consume(numpy_items()))
        rows["store, first pass"] = timed(lambda: consume(ds[i] for i in range(len(ds))))
        rows["store, second pass"] = timed(lambda: consume(ds[i] for i in range(len(ds))))
        cold = SequenceDataset(FeatureStore(url, cache_bytes=0))
        sub = min(len(cold), 2000)
        rows["store, no cache (2000 videos)"] = timed(lambda: consume(cold[i] for i in range(sub)))
        base = rows["numpy in memory"][0] / rows["numpy in memory"][1]
        print(f"{a.videos} videos x {a.segments} segments x {a.dim}-d float16 "
              f"({feats.nbytes / 2**20:.0f} MiB)")
        print(f"{'reader':32s} {'segments/s':>12s} {'MB/s':>9s} {'vs numpy':>9s}")
        for name, (n, secs) in rows.items():
            rate = n / secs
            print(f"{name:32s} {rate:12.0f} {rate * seg_bytes / 1e6:9.1f} {rate / base:9.2f}")


if __name__ == "__main__":
    main()
