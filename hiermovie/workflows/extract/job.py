"""The extract job: Ray workers decode clips, run a frozen backbone and fill a Zarr store.

Work flows as Ray tasks and actors: one decode task per video (CPU), model actors that encode
decoded videos (one per GPU, or one single-thread actor per CPU core on CPU-only machines); the
loop is `scheduler`. The driver's writer thread writes each shard once all its videos
are encoded (features are small; writing where the store is named keeps local-path stores
correct on a cluster). What is stored already is planned before Ray starts, so a finished job's
rerun ends at once. Exit codes: `report`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from hiermovie.config import ConfigError, Terminated
from hiermovie.datasets import VideoItem, load_input
from hiermovie.datasets.manifest import scan_folder
from hiermovie.feature_store import FeatureStore, plan_shards
from hiermovie.hardware import ONE_HEAP
from hiermovie.pipeline.backbone_config import (
    check_backbone,
)
from hiermovie.pipeline.containers import probe
from hiermovie.pipeline.decode import DecodeSpec, decode_item
from hiermovie.workflows.extract.config import ExtractConfig
from hiermovie.workflows.extract.report import ExtractRun, report
from hiermovie.workflows.extract.scheduler import (
    DECODER_AHEAD,
    Collaborators,
    Resources,
    Scheduler,
)
from hiermovie.workflows.progress import progress

if TYPE_CHECKING:
    from hiermovie.pipeline.workers import BackboneInfo  # imports torch: for types only


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
    Terminated.seen = True
    raise Terminated()


def run_extract(cfg: ExtractConfig) -> int:
    """Extract features for every video of `cfg.input` into `cfg.store`; returns an exit code."""
    if not cfg.input:
        raise ConfigError("input: required (a folder, a manifest or a data set)")
    if not cfg.store:
        raise ConfigError("store: required (a path or URL for the Zarr store)")
    items = load_input(cfg.input)
    skipped_files = scan_folder(cfg.input)[1] if os.path.isdir(cfg.input) else {}
    check_backbone(cfg.backbone)  # before Ray starts: one line, exit 2
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
    store = FeatureStore.open(cfg.store, "a", storage_options=cfg.storage_options)
    # before Ray starts (seconds): a store another job is writing is refused, and a job with
    # nothing left to do ends here
    store.check_free()
    resume = store.resume(set(by_id), cfg.retry_failed)
    shards = plan_shards(list(by_id), cfg.videos_per_shard, resume.done, resume.stored)
    summary = {"store": cfg.store, "total": len(items), "skipped_files": skipped_files,
               "strict": cfg.strict, "report_path": cfg.report_path}
    if not shards:
        store.check_settings(cfg.settings())  # what a finished store's rerun can check
        return report(None, stored_before=len(items),
                      earlier_failures=resume.earlier_failures, **summary)
    store.check_writable()  # a read-only or vanished location: exit 2 before Ray
    return _extract(cfg, store, by_id, summary)


def _extract(cfg: ExtractConfig, store: FeatureStore, by_id: dict[str, VideoItem],
             summary: dict[str, Any]) -> int:
    import ray

    owns_ray = _init_ray(cfg)
    workers, run = [], None
    writer = ThreadPoolExecutor(1, thread_name_prefix="shard-writer")
    try:
        res = Resources.of(cfg, ray.cluster_resources())
        d0 = _start_models(ray, cfg, res, workers)
        # planned again under the lease: another job may have written while Ray started
        resume = store.prepare(cfg.provenance(d0), set(by_id), cfg.retry_failed,
                               chunk_segments=cfg.chunk_segments, compressor=cfg.compressor)
        shards = plan_shards(list(by_id), cfg.videos_per_shard, resume.done, resume.stored)
        todo = [(s, by_id[v]) for s, part in enumerate(shards) for v in part]
        run = ExtractRun(shards, cfg.tokens_per_segment, d0.dim,
                         cfg.plan.num_frames * cfg.plan.clips, summary["report_path"], cfg.dtype)
        decode = ray.remote(max_retries=2)(decode_item).options(
            num_returns="streaming", _generator_backpressure_num_objects=DECODER_AHEAD,
            num_cpus=1 if res.gpus else 0.5, runtime_env={"env_vars": ONE_HEAP})
        spec = DecodeSpec(cfg.plan, d0.input_size, cfg.resize, cfg.strict,
                          cfg.part_segments(d0.input_size))
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
        Scheduler(Collaborators(ray, res, decode, spec, workers, run, store.write, timeout_s,
                                done, store.refresh_lease)).run_all(todo, writer)
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


def _start_models(ray: Any, cfg: ExtractConfig, res: Resources,
                  workers: list) -> BackboneInfo:
    """Start the model actors (into `workers`, so that the caller stops them whatever
    happens) and check they loaded the same weights; returns what the provenance needs."""
    from hiermovie.pipeline.workers import ModelWorker

    Model = ray.remote(max_restarts=2, max_task_retries=2)(ModelWorker)
    # On CPU-only machines a model actor and a decode task share each core (half a CPU each in
    # Ray's accounting): decoding is a small share of the work there, and decode tasks then
    # get a pool of reused worker processes instead of new ones per task.
    opts = {"num_gpus": 1, "num_cpus": 1} if res.gpus else {"num_cpus": 0.5}
    workers += [Model.options(**opts).remote(cfg.backbone, "cuda" if res.gpus else "cpu",
                                             0 if res.gpus else 1, cfg.plan.clips,
                                             cfg.plan.clip_pool)
                for _ in range(res.model_workers)]
    desc = ray.get([w.describe.remote(cfg.plan.num_frames) for w in workers])
    if desc[0].refused:  # raised here, in the driver: one line, exit 2
        raise ConfigError(desc[0].refused)
    if len({d.fingerprint for d in desc}) != 1:
        raise RuntimeError("model actors loaded different weights")
    return desc[0]
