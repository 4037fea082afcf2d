"""`hiermovie extract`: Ray workers decode clips, run a frozen backbone and fill a Zarr store.

Work flows as Ray tasks and actors: one decode task per video (CPU), model actors that encode
decoded videos (one per GPU, or one single-thread actor per CPU core on CPU-only machines). The
driver keeps a bounded number of videos in flight, so memory stays flat however long the
manifest is, and its writer thread writes each shard once all its videos are encoded (features
are small; writing where the store is named keeps local-path stores correct on a cluster).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hiermovie.config import ConfigError, opt
from hiermovie.datasets import VideoItem, load_input
from hiermovie.feature_store import (
    Provenance,
    VideoRecord,
    create_store,
    shard_id_for,
    write_shard,
)
from hiermovie.feature_store.lease import Lease
from hiermovie.pipeline.backbones import BackboneConfig
from hiermovie.pipeline.decode import Resize, decode_item
from hiermovie.pipeline.plans import PlanConfig
from hiermovie.pipeline.workers import ModelWorker
from hiermovie.progress import progress


@dataclass
class ExtractConfig:
    input: str = opt("", "folder of videos, .csv/.jsonl manifest, or vidsitu:ROOT / lvu:ROOT")
    store: str = opt("", "Zarr store: a local path or an fsspec URL (s3://...)")
    backbone: BackboneConfig = opt(default_factory=BackboneConfig)
    plan: PlanConfig = opt(default_factory=PlanConfig)
    resize: Resize = opt("squash", "squash to the input size (VidSitu) or short side + crop")
    dtype: Literal["float16", "float32"] = opt("float16", "stored feature dtype")
    videos_per_shard: int = opt(32, "videos per shard (one shard = one write)")
    chunk_segments: int = opt(4096, "segments per Zarr chunk (a shard in one chunk reads fastest)")
    compressor: Literal["none", "zstd", "blosc-zstd"] = opt("none", "feature compression")
    storage_options: dict = opt({}, "fsspec options for the store (e.g. endpoint_url)")
    ray_address: str = opt("", "join this Ray cluster; empty = $RAY_ADDRESS when set (as in "
                               "`ray job submit`), else start a local instance")
    num_cpus: int = opt(0, "local Ray instance: CPUs to use (0 = all)")
    model_workers: int = opt(0, "model actors (0 = one per GPU, else one per CPU)")
    decode_workers: int = opt(0, "concurrent decode tasks (0 = one per CPU not running a GPU "
                                 "actor, at least 1)")
    decode_inflight: int = opt(0, "videos decoded ahead of the model (0 = 2 per model actor + 2)")
    videos_per_call: int = opt(0, "videos per model call (0 = 1 on CPU, 8 on GPU)")
    limit: int = opt(0, "only the first N videos (0 = all)")
    strict: bool = opt(False, "exit non-zero when any video fails")
    report: str = opt("", "JSON report path (default: next to a local store)")
    progress: bool = opt(True, "show a progress bar")

    def __post_init__(self) -> None:
        for name in ("videos_per_shard", "chunk_segments"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1")
        for name in ("num_cpus", "model_workers", "decode_workers", "decode_inflight",
                     "videos_per_call", "limit"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0")


def _report_path(cfg: ExtractConfig) -> Path:
    if cfg.report:
        return Path(cfg.report)
    if "://" in cfg.store:
        return Path("extract-report.json")
    return Path(cfg.store.rstrip("/") + ".report.json")


def plan_shards(ids: list[str], per_shard: int, done: set[str],
                stored: set[str]) -> list[list[str]]:
    """Sorted ids cut into shards; complete shards and already-stored videos are left out."""
    ids = sorted(ids)
    shards = []
    for i in range(0, len(ids), per_shard):
        part = ids[i:i + per_shard]
        if shard_id_for(part) in done:
            continue
        part = [v for v in part if v not in stored]
        if part:
            shards.append(part)
    return shards


def start_local_ray(num_cpus: int = 0) -> None:
    """The embedded default: a local Ray instance sized to the machine (or `num_cpus`)."""
    import ray

    cpus = num_cpus or os.cpu_count() or 1
    # Ray keeps only as many idle workers as there are unreserved CPUs (killing the rest after
    # 1 s idle); on CPU-only machines the model actors reserve half of them, so half the decode
    # workers would be killed between videos and restarted, at ~1 CPU-s of imports each taken
    # from the model. One idle worker per core keeps every decode task's process warm.
    ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=1 << 30,
             log_to_driver=False, _system_config={"num_workers_soft_limit": cpus})


def _init_ray(cfg: ExtractConfig) -> bool:
    """Start or join Ray; True when this call started it (and must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    address = cfg.ray_address or os.environ.get("RAY_ADDRESS", "")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        start_local_ray(cfg.num_cpus)
    return True


def run_extract(cfg: ExtractConfig) -> int:
    """Extract features for every video of `cfg.input` into `cfg.store`; returns an exit code."""
    import ray

    if not cfg.input:
        raise ConfigError("input: required (a folder, a manifest or a data set)")
    if not cfg.store:
        raise ConfigError("store: required (a path or URL for the Zarr store)")
    items = load_input(cfg.input)
    if cfg.limit:
        items = items[:cfg.limit]
    by_id = {it.video_id: it for it in items}
    owns_ray = _init_ray(cfg)
    lease: Lease | None = None
    workers: list = []
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n_workers = cfg.model_workers or (gpus or max(1, cpus))
        if (gpus and n_workers > gpus) or (not gpus and n_workers * 0.5 >= cpus):
            # more actors than the cluster can hold would wait for resources forever
            raise ConfigError(f"model_workers: {n_workers} model actors do not fit a cluster of "
                              f"{cpus} CPUs and {gpus} GPUs (one per GPU; on CPU-only "
                              f"clusters at most {max(1, 2 * cpus - 1)})")
        per_call = cfg.videos_per_call or (8 if gpus else 1)
        inflight = cfg.decode_inflight or 2 * n_workers + 2
        # each decode task holds a worker process: start no more than there are cores
        decoders = cfg.decode_workers or max(1, cpus - n_workers if gpus else cpus)
        Model = ray.remote(max_restarts=2, max_task_retries=2)(ModelWorker)
        # On CPU-only machines a model actor and a decode task share each core (half a CPU each
        # in Ray's accounting): decoding is a small share of the work there, and decode tasks
        # then get a pool of reused worker processes instead of new ones per task.
        opts = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 0.5}
        workers = [Model.options(**opts).remote(cfg.backbone, "cuda" if gpus else "cpu",
                                                0 if gpus else 1) for _ in range(n_workers)]
        desc = ray.get([w.describe.remote(cfg.plan.num_frames) for w in workers])
        if len({d["fingerprint"] for d in desc}) != 1:
            raise RuntimeError("model actors loaded different weights")
        d0 = desc[0]
        prov = Provenance(
            backbone=cfg.backbone.name, dim=d0["dim"],
            tokens_per_segment=int(np.prod(cfg.backbone.tokens)), dtype=cfg.dtype,
            weights_fingerprint=d0["fingerprint"], weights_origin=d0["origin"],
            sampling={**asdict(cfg.plan), "resize": cfg.resize},
            preprocessing={"input_size": d0["input_size"], "mean": d0["mean"],
                           "std": d0["std"], "precision": d0["precision"],
                           "tokens": list(cfg.backbone.tokens), "weights": cfg.backbone.weights})
        so = cfg.storage_options or None
        create_store(cfg.store, prov, chunk_segments=cfg.chunk_segments,
                     compressor=cfg.compressor, storage_options=so)
        lease = Lease(cfg.store, so).acquire()
        done, stored, earlier_failures = _stored(cfg.store, so, set(by_id))
        shards = plan_shards(list(by_id), cfg.videos_per_shard, done, stored)
        todo = [(s, by_id[v]) for s, part in enumerate(shards) for v in part]
        skipped = len(items) - len(todo)

        decode = ray.remote(num_returns=2, max_retries=2)(decode_item).options(
            num_cpus=1 if gpus else 0.5)
        writer = ThreadPoolExecutor(1, thread_name_prefix="shard-writer")
        run = _Run(cfg, shards, d0, time.time())
        run.earlier_failures = earlier_failures
        queue = deque(todo)
        decoding: dict[Any, tuple[int, VideoItem, Any]] = {}
        ready: deque = deque()
        forwarding: dict[Any, tuple[int, list]] = {}
        load = [0] * n_workers
        writing: dict[Future, int] = {}
        bar = progress(total=len(todo), unit="video", enabled=cfg.progress, desc="extract")
        while queue or decoding or ready or forwarding or writing:
            lease.refresh()
            while queue and len(decoding) < decoders and len(decoding) + len(ready) < inflight:
                s, it = queue.popleft()
                meta_ref, frames_ref = decode.remote(
                    it.path, list(it.segments) if it.segments else None, cfg.plan,
                    d0["input_size"], cfg.resize)
                decoding[meta_ref] = (s, it, frames_ref)
            while ready and min(load) < 2:
                w = load.index(min(load))
                batch = [ready.popleft() for _ in range(min(per_call, len(ready)))]
                ref = workers[w].__call__.remote(*[b[3] for b in batch])
                forwarding[ref] = (w, batch)
                load[w] += 1
            refs = [*decoding, *forwarding]
            done_refs = ray.wait(refs, num_returns=1, timeout=0.05 if writing else 1.0)[0] \
                if refs else []
            if not refs:
                time.sleep(0.05)  # only writes left
            for ref in done_refs:
                if ref in decoding:
                    s, it, frames_ref = decoding.pop(ref)
                    try:
                        meta = ray.get(ref)
                    except ray.exceptions.RayError as e:  # the decoder process died
                        meta = {"status": "failed", "error": f"{it.path}: decoder crashed "
                                f"({type(e).__name__})", "fault": True}
                    if meta["status"] == "ok":
                        ready.append((s, it, meta, frames_ref))
                    else:
                        run.finish(s, it, meta, None)
                        bar.update()
                elif ref in forwarding:
                    w, batch = forwarding.pop(ref)
                    load[w] -= 1
                    try:
                        feats = ray.get(ref)
                    except ray.exceptions.RayError as e:
                        feats = [None] * len(batch)
                        err = f"model failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
                        for b in batch:
                            b[2].update(status="failed", error=err, fault=True)
                    for (s, it, meta, _), f in zip(batch, feats, strict=True):
                        run.finish(s, it, meta, f)
                        bar.update()
                        bar.set_postfix(seg_s=f"{run.segments / (time.time() - run.t0):.1f}",
                                        refresh=False)
            for fut in [f for f in writing if f.done()]:
                s = writing.pop(fut)
                if fut.exception() is not None:
                    run.faults.append(f"shard {s}: write failed: {fut.exception()}")
            for s in run.full_shards():
                writing[writer.submit(_write, cfg.store, run.take(s), so)] = s
        writer.shutdown(wait=True)
        bar.close()
        return run.report(_report_path(cfg), len(items), skipped)
    finally:
        for w in workers:  # a graceful actor exit costs ~1 CPU-s; they hold nothing to save
            with contextlib.suppress(Exception):  # best effort: never hide the job's own error
                ray.kill(w)
        if lease is not None:
            lease.release()
        if owns_ray:
            ray.shutdown()


def _write(url: str, records: list[VideoRecord], so: dict | None, tries: int = 3) -> str:
    """One shard, written by the driver's writer thread: a local store needs no access from
    other machines, and the write (~0.1 s) overlaps the next videos' work."""
    for attempt in range(tries):
        try:
            return write_shard(url, records, storage_options=so)
        except OSError:
            if attempt == tries - 1:
                raise
            time.sleep(2**attempt)
    raise AssertionError("unreachable")


def _stored(url: str, so: dict | None, wanted: set[str]
            ) -> tuple[set[str], set[str], dict[str, str]]:
    """Committed shard names, ids already stored, and the errors of those of `wanted` that
    failed before: one opening of the store."""
    from hiermovie.feature_store import FeatureStore

    store = FeatureStore(url, storage_options=so, cache_bytes=0)
    failed = {v: store.entry(v).error for v in store.videos(status="failed") if v in wanted}
    return set(store.shard_names), set(store.videos(status=None)), failed


class _Run:
    """Per-shard bookkeeping of finished videos, and the final report."""

    def __init__(self, cfg: ExtractConfig, shards: list[list[str]], desc: dict,
                 t0: float) -> None:
        self.cfg, self.shards, self.desc, self.t0 = cfg, shards, desc, t0
        self.records: dict[int, dict[str, VideoRecord]] = {}
        self.poisoned: set[int] = set()  # shards left unwritten for a rerun to redo
        self.segments = 0
        self.ok = 0
        self.failures: dict[str, str] = {}
        self.faults: list[str] = []
        self.earlier_failures: dict[str, str] = {}
        log = _report_path(cfg).with_suffix(".jsonl")
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log, "a")

    def finish(self, shard: int, item: VideoItem, meta: dict, feats: np.ndarray | None) -> None:
        k = int(np.prod(self.cfg.backbone.tokens))
        if meta["status"] == "ok" and feats is not None:
            rec = VideoRecord(video_id=item.video_id, features=feats, start_s=meta["start_s"],
                              end_s=meta["end_s"], frame_indices=meta["frame_indices"],
                              duration_s=meta["duration_s"], fps=meta["fps"],
                              num_frames=meta["num_frames"])
            if not np.isfinite(feats).all():
                meta = {**meta, "status": "failed", "fault": True,
                        "error": f"{item.path}: backbone produced NaN/Inf features"}
        if meta["status"] != "ok" or feats is None:
            rec = VideoRecord.failed(item.video_id, meta["error"], tokens=k, dim=self.desc["dim"],
                                     frames=self.cfg.plan.num_frames)
            if meta.get("fault"):  # not the video's fault: leave its shard for a rerun
                self.faults.append(f"{item.video_id}: {meta['error']}")
                self.poisoned.add(shard)
            else:
                self.failures[item.video_id] = meta["error"]
        else:
            self.ok += 1
            self.segments += rec.num_segments
        self.records.setdefault(shard, {})[item.video_id] = rec
        self._log(json.dumps({"t": round(time.time() - self.t0, 3), "video_id": item.video_id,
                              "status": rec.status, "segments": rec.num_segments,
                              "decode_s": round(meta.get("decode_s", 0.0), 4),
                              "error": rec.error}) + "\n")

    def _log(self, line: str) -> None:
        if self.log is None:
            return
        try:  # the log usually sits beside the store: a full disk must not end the job
            self.log.write(line)
            self.log.flush()
        except OSError as e:
            self.faults.append(f"log {self.log.name}: {e}")
            self.log = None

    def full_shards(self) -> list[int]:
        full = [s for s, recs in self.records.items() if len(recs) == len(self.shards[s])]
        for s in full:
            if s in self.poisoned:
                del self.records[s]
        return [s for s in full if s not in self.poisoned]

    def take(self, shard: int) -> list[VideoRecord]:
        recs = self.records.pop(shard)
        return [recs[v] for v in self.shards[shard]]

    def report(self, path: Path, total: int, skipped: int) -> int:
        try:
            if self.log is not None:
                self.log.close()
        except OSError as e:
            self.faults.append(f"log {self.log.name}: {e}")
        secs = time.time() - self.t0
        rep = {
            "store": self.cfg.store, "videos": total, "skipped_already_stored": skipped,
            "ok": self.ok, "failed": len(self.failures), "segments": self.segments,
            "seconds": round(secs, 2), "videos_per_s": round((self.ok + len(self.failures))
                                                             / max(secs, 1e-9), 3),
            "segments_per_s": round(self.segments / max(secs, 1e-9), 3),
            "faults": self.faults, "failures": self.failures,
            "failed_in_earlier_runs": self.earlier_failures,
        }
        try:
            path.write_text(json.dumps(rep, indent=2))
        except OSError as e:
            self.faults.append(f"report {path}: {e}")
        print(f"extract: {self.ok} ok, {len(self.failures)} failed, {skipped} already stored, "
              f"{self.segments} segments in {secs:.1f} s ({rep['segments_per_s']} segments/s); "
              f"report: {path}")
        for vid, err in list(self.failures.items())[:10]:
            print(f"  failed {vid}: {err}")
        if self.earlier_failures:
            print(f"  {len(self.earlier_failures)} video(s) of this input failed in earlier runs "
                  "(listed in the report)")
        if self.faults:
            for fault in self.faults[:5]:
                print(f"  fault: {fault}")
            print(f"  {len(self.faults)} fault(s) (not the videos' fault); their shards were not "
                  "written: rerun the same command to redo them")
            return 1
        return 3 if self.cfg.strict and (self.failures or self.earlier_failures) else 0
