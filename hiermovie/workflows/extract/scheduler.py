"""The extraction loop: decode tasks -> model actors -> the shard writer thread.

A decode task streams its video (a Ray generator): metadata, frames part by part, how it ended.
The driver takes a part from a decoder only while fewer than `inflight` parts wait for the
model, and a decoder runs at most `DECODER_AHEAD` parts ahead of the driver, so every process
holds a bounded number of parts, however long the film or the manifest. Every decode task has a
deadline (the time it is held back by a busy model does not count); one past it is killed (its
worker process with it: a decoder deadlocked in native code cannot be interrupted otherwise) and
retried once, then recorded as failed, and the job goes on.

Why not Ray Data (`read` -> `map_batches` with a stateful model class, the obvious fit): its
unit is a block of rows, and what this job needs is per video. A decode stuck in native code
must be killed at a deadline that grows with the video's length and stops while the model holds
it back, then retried once and recorded as failed without failing the dataset; a film streams
in parts whose features are joined before its shard can be written; shards are committed as
their last video finishes, so a kill loses at most the shards in flight and a rerun skips the
rest. Ray Data retries whole tasks and reports errors by block, and expresses none of these;
the loop below is the part of a scheduler Ray Core does not give (Ray still schedules, retries
and streams), tested against a fake Ray (`tests/test_extract_scheduler.py`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hiermovie.config import ConfigError
from hiermovie.datasets import VideoItem
from hiermovie.workflows.extract.config import ExtractConfig
from hiermovie.workflows.extract.report import ExtractRun

if TYPE_CHECKING:
    from hiermovie.pipeline.decode import DecodeSpec

DECODE_ATTEMPTS = 2  # a decode past its deadline is tried once more
DECODER_AHEAD = 2  # parts a decoder may produce before the driver takes them


@dataclass(frozen=True)
class Resources:
    """How many of each worker a job runs, resolved once from the config and the cluster."""

    gpus: int
    model_workers: int
    decoders: int  # concurrent decode tasks
    inflight: int  # decoded parts waiting for the model
    per_call: int  # parts per model call
    model_queue: int = 2  # calls queued per model actor, so it never waits for the driver

    @classmethod
    def of(cls, cfg: ExtractConfig, cluster: dict[str, float]) -> Resources:
        gpus, cpus = int(cluster.get("GPU", 0)), int(cluster.get("CPU", 1))
        n = cfg.model_workers or (gpus or max(1, cpus))
        if (gpus and n > gpus) or (not gpus and n * 0.5 >= cpus):
            # more actors than the cluster can hold would wait for resources forever
            raise ConfigError(f"model_workers: {n} model actors do not fit a cluster of {cpus} "
                              f"CPUs and {gpus} GPUs (one per GPU; on CPU-only clusters at most "
                              f"{max(1, 2 * cpus - 1)})")
        return cls(
            gpus=gpus, model_workers=n,
            # each decode task holds a worker process: start no more than there are cores
            decoders=cfg.decode_workers or max(1, cpus - n if gpus else cpus),
            inflight=cfg.decode_inflight or 2 * n + 2,
            per_call=cfg.videos_per_call or (8 if gpus else 1))


@dataclass
class Pending:
    """One video on its way: its decode stream (`gen`), its metadata, its parts' features."""

    shard: int
    item: VideoItem
    attempt: int = 1
    deadline: float = float("inf")
    timeout_s: float = 0.0
    gen: Any = None
    received: int = 0  # items taken from the stream
    parts: int = -1  # announced by the metadata; -1 before it
    meta: dict = field(default_factory=dict)
    feats: dict[int, Any] = field(default_factory=dict)  # part -> features (None: unreadable)
    end: dict | None = None


@dataclass(frozen=True)
class Part:
    video: Pending
    attempt: int  # of the video's decode; a part of a timed-out attempt is dropped
    index: int
    ref: Any


@dataclass
class Collaborators:
    """What the loop drives and reports to."""

    ray: Any  # the `ray` module (a fake in tests): wait, get, cancel, exceptions
    res: Resources
    decode: Any  # the streaming decode task: .remote(path, segments, spec) -> a stream
    spec: DecodeSpec
    workers: list  # model actors: .__call__.remote(*parts) -> [features per part]
    run: ExtractRun  # finish, full_shards, take, committed, faults, unwritten
    write: Callable[[list], Any]  # writes one shard's records (in the writer thread)
    timeout_s: Callable[[VideoItem], float]  # a video's decode deadline
    on_done: Callable[[], None]  # after each video (the progress bar)
    refresh: Callable[[], None]  # every turn of the loop (the store's lease)


class Scheduler:
    def __init__(self, c: Collaborators) -> None:
        self.ray, self.res, self.decode, self.spec = c.ray, c.res, c.decode, c.spec
        self.workers, self.run, self.write = c.workers, c.run, c.write
        self.timeout_s, self.on_done, self.refresh = c.timeout_s, c.on_done, c.refresh
        self.queue: deque[Pending] = deque()
        self.decoding: dict[Any, Pending] = {}  # stream -> video, until its end item
        self.ready: deque[Part] = deque()
        self.forwarding: dict[Any, tuple[int, list[Part]]] = {}
        self.load = [0] * len(c.workers)
        self.writing: dict[Future, tuple[int, list]] = {}  # -> (shard, its records)

    def run_all(self, todo: list[tuple[int, VideoItem]], writer: ThreadPoolExecutor) -> None:
        self.queue.extend(Pending(s, it) for s, it in todo)
        while self.queue or self.decoding or self.ready or self.forwarding or self.writing:
            t = time.time()
            self.refresh()
            self._start_decodes()
            self._start_forwards()
            held = self._held_back()
            for ref in self._wait(held):
                if ref in self.decoding:
                    self._received(self.decoding[ref])
                else:
                    self._forwarded(*self.forwarding.pop(ref), ref)
            if held:  # decoders waited for the model, not the other way round
                for p in self.decoding.values():
                    p.deadline += time.time() - t
            self._expire_decodes()
            self._collect_writes()
            for s in self.run.full_shards():
                records = self.run.take(s)
                self.writing[writer.submit(self.write, records)] = (s, records)

    def _held_back(self) -> bool:
        return len(self.ready) >= self.res.inflight

    def _start_decodes(self) -> None:
        while self.queue and len(self.decoding) < self.res.decoders:
            p = self.queue.popleft()
            p.timeout_s = self.timeout_s(p.item)
            p.deadline = time.time() + p.timeout_s
            p.received, p.parts, p.meta, p.feats, p.end = 0, -1, {}, {}, None
            segments = list(p.item.segments) if p.item.segments else None
            p.gen = self.decode.remote(p.item.path, segments, self.spec)
            self.decoding[p.gen] = p

    def _start_forwards(self) -> None:
        while self.ready and min(self.load) < self.res.model_queue:
            w = self.load.index(min(self.load))
            batch = []
            while self.ready and len(batch) < self.res.per_call:
                part = self.ready.popleft()
                if part.attempt == part.video.attempt:
                    batch.append(part)
            if not batch:
                continue
            ref = self.workers[w].__call__.remote(*[part.ref for part in batch])
            self.forwarding[ref] = (w, batch)
            self.load[w] += 1

    def _wait(self, held: bool) -> list:
        refs = [*self.forwarding] if held else [*self.decoding, *self.forwarding]
        if not refs:
            time.sleep(0.05)  # only writes left, or decoders held back with nothing to forward
            return []
        return self.ray.wait(refs, num_returns=1, timeout=0.05 if self.writing else 1.0)[0]

    def _received(self, p: Pending) -> None:
        """The next item of a video's stream: its metadata, a part, or its end."""
        try:
            ref = next(p.gen)
        except StopIteration:  # the stream broke off (its process died): no end item
            del self.decoding[p.gen]
            p.parts = max(0, p.received - 1)
            p.end = {"status": "failed", "error": f"{p.item.path}: decoder crashed",
                     "fault": True}
            return self._maybe_finish(p)
        i, p.received = p.received, p.received + 1
        if 0 < i <= p.parts:
            self.ready.append(Part(p, p.attempt, i - 1, ref))
            return
        try:
            item = self.ray.get(ref)
        except self.ray.exceptions.RayError as e:  # the decoder process died
            item = {"status": "failed", "error": f"{p.item.path}: decoder crashed "
                    f"({type(e).__name__})", "fault": True}
        if i == 0 and item["status"] == "ok":
            p.parts, p.meta = item.pop("parts"), item
            return
        del self.decoding[p.gen]
        if i == 0:  # refused before any part
            p.parts, p.meta = 0, item
        p.end = item
        self._maybe_finish(p)

    def _forwarded(self, w: int, batch: list[Part], ref: Any) -> None:
        self.load[w] -= 1
        try:
            feats = self.ray.get(ref)
        except self.ray.exceptions.RayError as e:
            feats = [None] * len(batch)
            err = f"model failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            for part in batch:
                part.video.meta.update(status="failed", error=err, fault=True)
        for part, f in zip(batch, feats, strict=True):
            if part.attempt == part.video.attempt:
                part.video.feats[part.index] = f
                self._maybe_finish(part.video)

    def _maybe_finish(self, p: Pending) -> None:
        if p.end is None or len(p.feats) < p.parts:
            return
        if p.end["status"] == "ok":
            p.meta["decode_s"] = p.end["decode_s"]
        elif p.meta.get("status") != "failed":  # a model failure found first is kept
            p.meta = {**p.meta, **p.end}
        parts = [p.feats[k] for k in range(p.parts)]
        ok = p.meta["status"] == "ok" and all(f is not None for f in parts)
        self._finish(p, np.concatenate(parts) if ok and parts else None)

    def _expire_decodes(self) -> None:
        now = time.time()
        for gen, p in [(g, p) for g, p in self.decoding.items() if now > p.deadline]:
            del self.decoding[gen]
            self.ray.cancel(gen, force=True)  # kills the worker process, deadlocked or not
            if p.attempt < DECODE_ATTEMPTS:
                p.attempt += 1
                self.queue.appendleft(p)
            else:
                p.attempt += 1  # its parts still on their way are dropped
                p.meta = {"status": "failed", "error": f"{p.item.path}: decoding timed out "
                          f"after {p.timeout_s:.0f} s ({DECODE_ATTEMPTS} tries; "
                          "--decode_timeout_s sets the limit)"}
                self._finish(p, None)

    def _collect_writes(self) -> None:
        for fut in [f for f in self.writing if f.done()]:
            s, records = self.writing.pop(fut)
            if fut.exception() is not None:
                self.run.faults.append(f"shard {s}: write failed: {fut.exception()}")
                self.run.unwritten += len(records)
            else:
                self.run.committed(records)

    def _finish(self, p: Pending, feats: Any) -> None:
        self.run.finish(p.shard, p.item, p.meta, feats)
        self.on_done()
