"""The extraction loop against a fake Ray: deadlines (a stuck decode is killed, retried once,
recorded failed; time held back by a busy model does not count) and backpressure (decoded parts
waiting for the model never exceed `inflight`; decode tasks never exceed `decoders`)."""

import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np

from hiermovie.datasets import VideoItem
from hiermovie.workflows.extract.scheduler import Collaborators, Resources, Scheduler


class Ref:
    def __init__(self, value, ready_at=0.0):
        self.value, self.ready_at = value, ready_at

    def ready(self):
        return time.monotonic() >= self.ready_at


class Stream:
    """A decode task's stream: metadata, `parts` parts, the end; item i ready `step` s after
    the previous one is taken (never, for a stuck decoder)."""

    def __init__(self, parts, step, stuck=False):
        self.items = [{"status": "ok", "parts": parts}, *[np.zeros((1, 2, 8, 8, 3))] * parts,
                      {"status": "ok", "decode_s": 0.0}]
        self.step, self.stuck, self.i, self.cancelled = step, stuck, 0, False
        self.next_at = time.monotonic() + step

    def ready(self):
        return not self.stuck and self.i < len(self.items) and time.monotonic() >= self.next_at

    def __next__(self):
        if self.i >= len(self.items):
            raise StopIteration
        ref, self.i = Ref(self.items[self.i]), self.i + 1
        self.next_at = time.monotonic() + self.step
        return ref


class FakeRay:
    exceptions = SimpleNamespace(RayError=RuntimeError)

    def __init__(self):
        self.cancelled = []

    def wait(self, refs, num_returns=1, timeout=1.0):
        end = time.monotonic() + timeout
        while True:
            ready = [r for r in refs if r.ready()]
            if ready or time.monotonic() >= end:
                return ready[:num_returns], []
            time.sleep(0.002)

    def get(self, ref):
        return ref.value

    def cancel(self, stream, force=False):
        stream.cancelled = True
        self.cancelled.append(stream)


class FakeRun:
    def __init__(self):
        self.done, self.faults, self.unwritten = {}, [], 0

    def finish(self, shard, item, meta, feats):
        self.done[item.video_id] = (meta["status"], meta.get("error", ""), feats)

    def full_shards(self):
        return []


def _scheduler(videos, model_s, inflight, decoders, timeout_s, step=0.005, stuck=()):
    ray, run, seen = FakeRay(), FakeRun(), {"ready": 0, "decoding": 0}
    streams = []

    def decode(path, segments, spec):
        streams.append(Stream(videos[path], step, stuck=path in stuck))
        return streams[-1]

    def forward(*parts):
        return Ref([np.ones((1, 1, 4), np.float32) for _ in parts], time.monotonic() + model_s)

    res = Resources(gpus=0, model_workers=1, decoders=decoders, inflight=inflight, per_call=1)
    worker = SimpleNamespace(__call__=SimpleNamespace(remote=forward))
    sched = None

    def refresh():
        seen["ready"] = max(seen["ready"], len(sched.ready))
        seen["decoding"] = max(seen["decoding"], len(sched.decoding))

    sched = Scheduler(Collaborators(ray, res, SimpleNamespace(remote=decode), None, [worker],
                                    run, lambda records: None, lambda item: timeout_s,
                                    lambda: None, refresh))
    todo = [(0, VideoItem(video_id=p, path=p)) for p in videos]
    with ThreadPoolExecutor(1) as writer:
        sched.run_all(todo, writer)
    return run, ray, seen


def test_a_stuck_decode_is_killed_retried_once_and_recorded_failed():
    videos = {"a": 3, "stuck": 3, "b": 3}
    t = time.monotonic()
    run, ray, _ = _scheduler(videos, model_s=0.001, inflight=4, decoders=2, timeout_s=0.2,
                             stuck={"stuck"})
    assert run.done["a"][0] == run.done["b"][0] == "ok"
    assert run.done["a"][2].shape == (3, 1, 4)  # its parts joined in order
    status, error, feats = run.done["stuck"]
    assert status == "failed" and "timed out" in error and "2 tries" in error and feats is None
    assert len(ray.cancelled) == 2 and all(s.stuck for s in ray.cancelled)  # each try killed
    assert time.monotonic() - t < 3  # two deadlines, not a hang


def test_parts_waiting_for_a_slow_model_are_bounded_and_that_wait_is_not_a_deadline():
    videos = {f"v{i}": 5 for i in range(4)}
    # the model takes 20 parts x 0.1 s = 2 s; each decode alone would end in 0.035 s, but is
    # held back far past its 0.25 s deadline: held-back time must not count
    run, ray, seen = _scheduler(videos, model_s=0.1, inflight=1, decoders=3, timeout_s=0.25)
    assert all(status == "ok" for status, _, _ in run.done.values()), run.done
    assert not ray.cancelled
    assert seen["ready"] <= 1  # backpressure: never more parts waiting than `inflight`
    assert seen["decoding"] <= 3  # never more decode tasks than `decoders`


def test_decode_workers_and_inflight_size_the_decoders_and_the_queue():
    """By default one decoder per CPU, and a queue that keeps every model actor fed beyond the
    part it is running (longer with more actors); given values win."""
    from hiermovie.config import from_dict
    from hiermovie.workflows.extract import ExtractConfig
    from hiermovie.workflows.extract.scheduler import Resources

    base = from_dict(ExtractConfig, {"input": "in", "store": "s.zarr"})
    cpu, gpu = Resources.of(base, {"CPU": 8}), Resources.of(base, {"CPU": 8, "GPU": 2})
    assert cpu.decoders == 8 and gpu.decoders == 6  # the CPUs the GPU actors leave
    assert cpu.inflight > 2 * cpu.model_workers and gpu.inflight > 2 * gpu.model_workers
    assert gpu.inflight < cpu.inflight  # fewer actors, a shorter queue
    asked = Resources.of(from_dict(ExtractConfig, {"input": "in", "store": "s.zarr",
                                                   "decode_workers": 3, "decode_inflight": 5}),
                         {"CPU": 8})
    assert (asked.decoders, asked.inflight) == (3, 5)
