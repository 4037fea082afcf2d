"""The extraction loop: decode tasks -> model actors -> the shard writer thread.

The driver keeps a bounded number of videos in flight, so memory stays flat however long the
manifest is. Every decode task has a deadline; one past it is killed (its worker process with
it: a decoder deadlocked in native code cannot be interrupted otherwise) and retried once, then
recorded as failed, and the job goes on.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hiermovie.datasets import VideoItem
from hiermovie.workflows.extract_report import ExtractRun

DECODE_ATTEMPTS = 2  # a decode past its deadline is tried once more


@dataclass(frozen=True)
class Resources:
    """How many of each worker a job runs, resolved once from the config and the cluster."""

    gpus: int
    model_workers: int
    decoders: int  # concurrent decode tasks
    inflight: int  # videos decoded ahead of the model
    per_call: int  # videos per model call
    model_queue: int = 2  # calls queued per model actor, so it never waits for the driver


@dataclass
class Pending:
    """One video on its way: decoding (`ref` is its metadata ref) or decoded (`meta`)."""

    shard: int
    item: VideoItem
    attempt: int = 1
    deadline: float = float("inf")
    timeout_s: float = 0.0
    ref: Any = None
    frames: Any = None
    meta: dict = field(default_factory=dict)


class Scheduler:
    def __init__(self, ray: Any, res: Resources, decode: Any, decode_args: tuple,
                 workers: list, run: ExtractRun, write: Callable[[list], Any],
                 timeout_s: Callable[[VideoItem], float], on_done: Callable[[], None],
                 refresh: Callable[[], None]) -> None:
        self.ray, self.res, self.decode, self.decode_args = ray, res, decode, decode_args
        self.workers, self.run, self.write = workers, run, write
        self.timeout_s, self.on_done, self.refresh = timeout_s, on_done, refresh
        self.queue: deque[Pending] = deque()
        self.decoding: dict[Any, Pending] = {}
        self.ready: deque[Pending] = deque()
        self.forwarding: dict[Any, tuple[int, list[Pending]]] = {}
        self.load = [0] * len(workers)
        self.writing: dict[Future, tuple[int, list]] = {}  # -> (shard, its records)

    def run_all(self, todo: list[tuple[int, VideoItem]], writer: ThreadPoolExecutor) -> None:
        self.queue.extend(Pending(s, it) for s, it in todo)
        while self.queue or self.decoding or self.ready or self.forwarding or self.writing:
            self.refresh()
            self._start_decodes()
            self._start_forwards()
            for ref in self._wait():
                if ref in self.decoding:
                    self._decoded(self.decoding.pop(ref), ref)
                else:
                    self._forwarded(*self.forwarding.pop(ref), ref)
            self._expire_decodes()
            self._collect_writes()
            for s in self.run.full_shards():
                records = self.run.take(s)
                self.writing[writer.submit(self.write, records)] = (s, records)

    def _start_decodes(self) -> None:
        while (self.queue and len(self.decoding) < self.res.decoders
               and len(self.decoding) + len(self.ready) < self.res.inflight):
            p = self.queue.popleft()
            p.timeout_s = self.timeout_s(p.item)
            p.deadline = time.time() + p.timeout_s
            segments = list(p.item.segments) if p.item.segments else None
            p.ref, p.frames = self.decode.remote(p.item.path, segments, *self.decode_args)
            self.decoding[p.ref] = p

    def _start_forwards(self) -> None:
        while self.ready and min(self.load) < self.res.model_queue:
            w = self.load.index(min(self.load))
            batch = [self.ready.popleft() for _ in range(min(self.res.per_call, len(self.ready)))]
            ref = self.workers[w].__call__.remote(*[p.frames for p in batch])
            self.forwarding[ref] = (w, batch)
            self.load[w] += 1

    def _wait(self) -> list:
        refs = [*self.decoding, *self.forwarding]
        if not refs:
            time.sleep(0.05)  # only writes left
            return []
        return self.ray.wait(refs, num_returns=1, timeout=0.05 if self.writing else 1.0)[0]

    def _decoded(self, p: Pending, ref: Any) -> None:
        try:
            p.meta = self.ray.get(ref)
        except self.ray.exceptions.RayError as e:  # the decoder process died
            p.meta = {"status": "failed", "error": f"{p.item.path}: decoder crashed "
                      f"({type(e).__name__})", "fault": True}
        if p.meta["status"] == "ok":
            self.ready.append(p)
        else:
            self._finish(p, None)

    def _forwarded(self, w: int, batch: list[Pending], ref: Any) -> None:
        self.load[w] -= 1
        try:
            feats = self.ray.get(ref)
        except self.ray.exceptions.RayError as e:
            feats = [None] * len(batch)
            err = f"model failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            for p in batch:
                p.meta.update(status="failed", error=err, fault=True)
        for p, f in zip(batch, feats, strict=True):
            self._finish(p, f)

    def _expire_decodes(self) -> None:
        now = time.time()
        for ref, p in [(r, p) for r, p in self.decoding.items() if now > p.deadline]:
            del self.decoding[ref]
            self.ray.cancel(ref, force=True)  # kills the worker process, deadlocked or not
            if p.attempt < DECODE_ATTEMPTS:
                p.attempt += 1
                self.queue.appendleft(p)
            else:
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
