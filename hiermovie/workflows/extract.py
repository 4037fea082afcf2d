"""`hiermovie extract`: Ray workers decode clips, run a frozen backbone and fill a Zarr store.

Work flows as Ray tasks and actors: one decode task per video (CPU), model actors that encode
decoded videos (one per GPU, or one single-thread actor per CPU core on CPU-only machines); the
loop is `extract_scheduler`. The driver's writer thread writes each shard once all its videos
are encoded (features are small; writing where the store is named keeps local-path stores
correct on a cluster). What is stored already is planned before Ray starts, so a finished job's
rerun ends at once. Exit codes: `extract_report`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from hiermovie.config import ConfigError, Terminated, opt
from hiermovie.datasets import VideoItem, load_input
from hiermovie.datasets.manifest import scan_folder
from hiermovie.feature_store import StoreWriter
from hiermovie.hardware import ONE_HEAP
from hiermovie.pipeline.backbone_config import (
    DEFAULT_SAMPLING,
    RECIPES,
    BackboneConfig,
    check_backbone,
)
from hiermovie.pipeline.containers import probe
from hiermovie.pipeline.decode import DecodeSpec, Resize, decode_item
from hiermovie.pipeline.plans import PlanConfig
from hiermovie.progress import progress
from hiermovie.workflows.extract_plan import (
    plan_shards,
    provenance,
    settings,
    tokens_per_segment,
)
from hiermovie.workflows.extract_report import ExtractRun, report
from hiermovie.workflows.extract_scheduler import (
    DECODER_AHEAD,
    Resources,
    Scheduler,
    part_segments,
)


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
    decode_inflight: int = opt(0, "parts (a short clip, or ~4 MiB of a film's frames) decoded "
                                  "ahead of the model (0 = 2 per model actor + 2)")
    videos_per_call: int = opt(0, "parts (a short clip, or ~4 MiB of a film's frames) per model "
                                  "call (0 = 1 on CPU, 8 on GPU)")
    limit: int = opt(0, "only the first N videos (0 = all)")
    decode_timeout_s: float = opt(120.0, "a video's decode deadline: this many seconds ...")
    decode_timeout_per_s: float = opt(2.0, "... plus this many per second of video (read from "
                                           "its header); past it the task is killed and "
                                           "retried once, then the video is recorded failed")
    retry_failed: bool = opt(False, "decode again the videos earlier runs recorded as failed "
                                    "(their shards are rewritten)")
    strict: bool = opt(False, "exit non-zero (3) when any video fails")
    report: str = opt("", "JSON report path (default: next to a local store)")
    progress: bool = opt(True, "show a progress bar")

    def __post_init__(self) -> None:
        for name in ("videos_per_shard", "chunk_segments"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1")
        for name in ("num_cpus", "model_workers", "decode_workers", "decode_inflight",
                     "videos_per_call", "limit", "decode_timeout_per_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0")
        if not self.decode_timeout_s > 0:
            raise ValueError("decode_timeout_s: must be > 0")

    def resolved(self, has_segments: bool) -> tuple[ExtractConfig, str]:
        """This config with the plan's `auto` and 0s chosen for its input and backbone, and
        the line that says what was chosen."""
        plan, chosen = self.plan.resolved(self.input, has_segments, RECIPES.get(
            self.backbone.name, DEFAULT_SAMPLING))
        return replace(self, plan=plan), chosen


def _report_path(cfg: ExtractConfig) -> Path:
    if cfg.report:
        return Path(cfg.report)
    if "://" in cfg.store:
        return Path("extract-report.json")
    return Path(cfg.store.rstrip("/") + ".report.json")


def start_local_ray(num_cpus: int = 0) -> None:
    """The embedded default: a local Ray instance sized to the machine (or `num_cpus`)."""
    import ray

    cpus = num_cpus or os.cpu_count() or 1
    # Ray keeps only as many idle workers as there are unreserved CPUs (killing the rest after
    # 1 s idle); on CPU-only machines the model actors reserve half of them, so half the decode
    # workers would be killed between videos and restarted, at ~1 CPU-s of imports each taken
    # from the model. One idle worker per core keeps every decode task's process warm.
    from hiermovie.workflows.ray_reaper import watch_this_process

    watch_this_process()  # before Ray starts: a kill at any moment leaves nothing behind
    # "local": our own instance even if `ray start` left one here (a bare init would join it)
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, object_store_memory=1 << 30,
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
    # after ray.init, whose native handler would print a signal dump and die: SIGTERM (what
    # a scheduler or `kill` sends) stops the job as Ctrl-C does, cleanly, to be rerun
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    return True


def _terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def run_extract(cfg: ExtractConfig) -> int:
    """Extract features for every video of `cfg.input` into `cfg.store`; returns an exit code."""
    if not cfg.input:
        raise ConfigError("input: required (a folder, a manifest or a data set)")
    if not cfg.store:
        raise ConfigError("store: required (a path or URL for the Zarr store)")
    check_backbone(cfg.backbone)  # before Ray starts: one line, exit 2
    items = load_input(cfg.input)
    skipped_files = scan_folder(cfg.input)[1] if os.path.isdir(cfg.input) else {}
    if not items:
        others = (f"; other entries: {', '.join(list(skipped_files)[:3])}" if skipped_files
                  else "")
        raise ConfigError(f"input: {cfg.input}: no videos found (suffixes: README, "
                          f"'Inputs'){others}")
    if cfg.limit:
        items = items[:cfg.limit]
    cfg, chosen = cfg.resolved(any(it.segments for it in items))
    if chosen:
        print(f"extract: plan: {chosen}")
    if cfg.plan.kind != "explicit" and any(it.segments for it in items):
        print(f"extract: warning: {cfg.input} gives segment times, which the {cfg.plan.kind!r} "
              "plan ignores (use --plan.kind explicit to extract them)")
    by_id = {it.video_id: it for it in items}
    store = StoreWriter(cfg.store, cfg.storage_options, chunk_segments=cfg.chunk_segments,
                        compressor=cfg.compressor)
    # before Ray starts (seconds): a store another job is writing is refused, and a job with
    # nothing left to do ends here
    store.check_free()
    resume = store.resume(set(by_id), cfg.retry_failed)
    shards = plan_shards(list(by_id), cfg.videos_per_shard, resume.done, resume.stored)
    summary = {"store": cfg.store, "total": len(items), "skipped_files": skipped_files,
               "strict": cfg.strict, "report_path": _report_path(cfg)}
    if not shards:
        store.check_settings(settings(cfg))  # what a finished store's rerun can check
        return report(None, stored_before=len(items),
                      earlier_failures=resume.earlier_failures, **summary)
    store.check_writable()  # a read-only or vanished location: exit 2 before Ray
    return _extract(cfg, store, by_id, summary)


def _extract(cfg: ExtractConfig, store: StoreWriter, by_id: dict[str, VideoItem],
             summary: dict[str, Any]) -> int:
    import ray

    owns_ray = _init_ray(cfg)
    workers, run = [], None
    writer = ThreadPoolExecutor(1, thread_name_prefix="shard-writer")
    try:
        res = Resources.of(cfg, ray.cluster_resources())
        d0 = _start_models(ray, cfg, res, workers)
        # planned again under the lease: another job may have written while Ray started
        resume = store.open(provenance(cfg, d0), set(by_id), cfg.retry_failed)
        shards = plan_shards(list(by_id), cfg.videos_per_shard, resume.done, resume.stored)
        todo = [(s, by_id[v]) for s, part in enumerate(shards) for v in part]
        run = ExtractRun(shards, tokens_per_segment(cfg), d0["dim"],
                         cfg.plan.num_frames * cfg.plan.clips, summary["report_path"],
                         cfg.plan.clips, cfg.plan.clip_pool, cfg.dtype)
        decode = ray.remote(max_retries=2)(decode_item).options(
            num_returns="streaming", _generator_backpressure_num_objects=DECODER_AHEAD,
            num_cpus=1 if res.gpus else 0.5, runtime_env={"env_vars": ONE_HEAP})
        spec = DecodeSpec(cfg.plan, d0["input_size"], cfg.resize, cfg.strict,
                          part_segments(cfg, d0["input_size"]))
        bar = progress(total=len(todo), unit="video", enabled=cfg.progress, desc="extract")

        def done() -> None:
            bar.update()
            bar.set_postfix(seg_s=f"{run.decoded_segments / (time.time() - run.t0):.1f}",
                            refresh=False)

        def timeout_s(item: VideoItem) -> float:
            header = probe(item.path)  # None where the driver cannot read the file
            return cfg.decode_timeout_s + cfg.decode_timeout_per_s * (
                (header.duration_s or 0.0) if header else 0.0)

        # the driver's writer thread writes each shard: a local store needs no access from
        # other machines, and the write (~0.1 s) overlaps the next videos' work
        Scheduler(ray, res, decode, spec, workers, run, store.write, timeout_s, done,
                  store.refresh).run_all(todo, writer)
        writer.shutdown(wait=True)
        bar.close()
        return report(run, stored_before=len(by_id) - len(todo),
                      earlier_failures=resume.earlier_failures, **summary)
    finally:
        writer.shutdown(wait=True, cancel_futures=True)
        if run is not None:
            run.close()
        for w in workers:  # a graceful actor exit costs ~1 CPU-s; they hold nothing to save
            with contextlib.suppress(Exception):  # best effort: never hide the job's own error
                ray.kill(w)
        store.close()
        if owns_ray:
            ray.shutdown()


def _start_models(ray: Any, cfg: ExtractConfig, res: Resources, workers: list) -> dict:
    """Start the model actors (into `workers`, so that the caller stops them whatever
    happens) and check they loaded the same weights; returns what the provenance needs."""
    from hiermovie.pipeline.workers import ModelWorker

    Model = ray.remote(max_restarts=2, max_task_retries=2)(ModelWorker)
    # On CPU-only machines a model actor and a decode task share each core (half a CPU each in
    # Ray's accounting): decoding is a small share of the work there, and decode tasks then
    # get a pool of reused worker processes instead of new ones per task.
    opts = {"num_gpus": 1, "num_cpus": 1} if res.gpus else {"num_cpus": 0.5}
    workers += [Model.options(**opts).remote(cfg.backbone, "cuda" if res.gpus else "cpu",
                                             0 if res.gpus else 1)
                for _ in range(res.model_workers)]
    desc = ray.get([w.describe.remote(cfg.plan.num_frames) for w in workers])
    if "refused" in desc[0]:  # raised here, in the driver: one line, exit 2
        raise ConfigError(desc[0]["refused"])
    if len({d["fingerprint"] for d in desc}) != 1:
        raise RuntimeError("model actors loaded different weights")
    return desc[0]
