"""extract under faults: a killed run resumes to the same store; a multi-node run survives
losing a node."""

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from hiermovie.config import from_dict
from hiermovie.feature_store import FeatureStore, StoreError, complete_shards
from hiermovie.workflows.extract import ExtractConfig, run_extract
from tests.reliability import record
from tests.videos import same_store

ray = pytest.importorskip("ray")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--videos_per_shard", "2", "--backbone.name", "tiny3d/8", "--backbone.precision",
        "fp32", "--plan.num_frames", "4", "--progress", "false", "--num_cpus", "2"]


def extract_cmd(inp, store, *extra: str) -> list[str]:
    """`hiermovie extract` as a subprocess, with the tests' tiny settings."""
    return [sys.executable, "-m", "hiermovie.workflows.cli", "extract", "--input", str(inp),
            "--store", str(store), *ARGS, *extra]


def _cfg_from_args(inp, store):
    pairs = dict(zip(ARGS[::2], ARGS[1::2], strict=True))
    data = {"input": str(inp), "store": str(store)}
    for k, v in pairs.items():
        node = data
        *parents, leaf = k[2:].split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return from_dict(ExtractConfig, data)


def kill_and_resume(inp, store, kills, seed=0):
    """SIGKILL `hiermovie extract` at random moments `kills` times, then let it finish."""
    rng = random.Random(seed)
    cmd = extract_cmd(inp, store)
    for _ in range(kills):
        proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(4.0, 14.0))
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
        proc.wait()
        if os.path.exists(store):  # a reader opened now sees only complete shards
            seen = FeatureStore(str(store))
            assert len(seen.shard_names) == len(complete_shards(str(store)))
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


KILL_OUTCOME = ("a reader opened after each kill saw only complete shards; the final store "
                "equals an uninterrupted run's byte for byte (same videos, none twice)")


def test_killed_extract_resumes_to_identical_store(many_clips, tmp_path):
    ref = tmp_path / "ref.zarr"
    assert run_extract(_cfg_from_args(many_clips, ref)) == 0
    store = tmp_path / "killed.zarr"
    done = kill_and_resume(many_clips, store, kills=1)
    assert done.returncode == 0, done.stderr[-2000:]
    same_store(str(ref), str(store))
    record("Faults", "extract SIGKILLed (driver and its Ray) at a random moment, then rerun", 1,
           KILL_OUTCOME)


@pytest.mark.slow
def test_killed_extract_ten_times(many_clips, tmp_path):
    ref = tmp_path / "ref.zarr"
    assert run_extract(_cfg_from_args(many_clips, ref)) == 0
    store = tmp_path / "killed.zarr"
    done = kill_and_resume(many_clips, store, kills=10, seed=1)
    assert done.returncode == 0, done.stderr[-2000:]
    same_store(str(ref), str(store))
    record("Faults", "extract SIGKILLed at random moments 10 times in a row, then rerun", 10,
           KILL_OUTCOME)


@pytest.mark.slow
def test_two_node_cluster_survives_node_loss(many_clips, tmp_path, monkeypatch):
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    worker = cluster.add_node(num_cpus=2)
    try:
        # without an address extract starts its own Ray; a bare ray.init() would join this one
        own = subprocess.run(extract_cmd(many_clips, tmp_path / "own.zarr"), cwd=ROOT,
                             capture_output=True, text=True, timeout=300,
                             env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
        assert own.returncode == 0, own.stderr[-2000:]
        cfg = _cfg_from_args(many_clips, tmp_path / "two.zarr")
        cfg.model_workers = 2
        with monkeypatch.context() as env:
            # as inside `ray job submit`: extract joins that cluster, starts no local one
            env.setenv("RAY_ADDRESS", cluster.address)
            full = run_extract(cfg)
        assert full == 0
        assert len(FeatureStore(str(tmp_path / "two.zarr")).videos()) == 8

        ray.init(address=cluster.address, log_to_driver=False)

        cfg = _cfg_from_args(many_clips, tmp_path / "lost.zarr")
        cfg.model_workers = 2
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("rc", run_extract(cfg)))
        t.start()
        time.sleep(3.0)
        cluster.remove_node(worker)
        t.join(300)
        assert not t.is_alive(), "extract hung after losing a node"
        # 1 if a model call exhausted its retries: its shard is left for a rerun to redo
        assert result["rc"] in (0, 1)
        if result["rc"] == 1:
            assert run_extract(cfg) == 0
        same_store(str(tmp_path / "two.zarr"), str(tmp_path / "lost.zarr"))
        record("Faults", "two-node Ray cluster, one node removed 3 s into the job", 1,
               f"exit {result['rc']}" + (", rerun completed" if result["rc"] else "") +
               "; store identical to the two-node run without the loss")
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_second_job_on_the_same_store_refuses(many_clips, tmp_path):
    import json
    import socket

    store = tmp_path / "shared.zarr"
    store.mkdir()
    holder = subprocess.Popen(["sleep", "120"])  # stands in for a running extract job
    (store / ".hiermovie-writer.json").write_text(json.dumps(
        {"id": "other", "host": socket.gethostname(), "pid": holder.pid, "since": time.time(),
         "refreshed": time.time()}))
    cmd = extract_cmd(many_clips, store)
    try:
        second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2
        assert f"another job is writing this store (pid {holder.pid}" in second.stderr
        assert sorted(os.listdir(store)) == [".hiermovie-writer.json"]  # refused before Ray
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lease is stale and taken over
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (store / ".hiermovie-writer.json").exists()  # released at the end
    assert len(FeatureStore(str(store)).videos()) == 8
    record("Faults", "a second extract job on a store another live job is writing", 1,
           "refused (exit 2) naming the holder's host and pid, store untouched; once the "
           "holder died its lease was taken over and the job completed")


HANG = """
import decord

_init, _get = decord.VideoReader.__init__, decord.VideoReader.get_batch


def __init__(self, uri, *args, **kwargs):
    self._uri = str(uri)
    _init(self, uri, *args, **kwargs)


def get_batch(self, indices):
    if "hang" in self._uri:  # a stand-in for a decoder deadlocked in native code
        import time
        while True:
            time.sleep(3600)
    return _get(self, indices)


decord.VideoReader.__init__, decord.VideoReader.get_batch = __init__, get_batch
"""


@pytest.mark.slow
def test_a_decode_that_never_returns_is_killed_and_the_job_goes_on(many_clips, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("v0", "v1", "v2"):
        (clips / f"{name}.mp4").write_bytes((many_clips / f"{name}.mp4").read_bytes())
    (clips / "hang.mp4").write_bytes((many_clips / "v3.mp4").read_bytes())
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HANG)
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
    store = tmp_path / "s.zarr"
    t = time.time()
    r = subprocess.run(extract_cmd(clips, store, "--decode_timeout_s", "5",
                                   "--decode_timeout_per_s", "0.5"), cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    took = time.time() - t
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    s = FeatureStore(str(store))
    assert sorted(s.videos()) == ["v0", "v1", "v2"]
    err = s.entry("hang").error
    assert s.entry("hang").status == "failed" and "timed out after 10 s (2 tries" in err, err
    record("Faults", "a decode that never returns (decord's get_batch blocked forever, as in "
           "the MPEG-2 deadlock)", 1, f"killed at its deadline and retried once, then recorded "
           f"`{err.split(': ', 1)[1][:60]}`; the other 3 videos stored, exit 0, {took:.0f} s")


def test_exit_3_when_every_video_of_the_run_fails(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.mp4").write_bytes(b"not a video")
    (bad / "b.mp4").write_bytes(b"")
    (bad / "notes.txt").write_text("hello")
    r = subprocess.run(extract_cmd(bad, tmp_path / "s.zarr"), cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "nothing was stored" in r.stdout and "notes.txt" in r.stdout, r.stdout
    record("Bad inputs (extract; job goes on, exit 0)", "every video of the run fails", 1,
           "exit 3, `nothing was stored`; the non-video file in the folder is listed as skipped")


def test_rerun_plans_before_ray_and_retry_failed_redoes_fixed_videos(many_clips, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("v0", "v1", "v2"):
        (clips / f"{name}.mp4").write_bytes((many_clips / f"{name}.mp4").read_bytes())
    (clips / "later.mp4").write_bytes(b"still downloading")
    store = tmp_path / "s.zarr"
    cli = extract_cmd(clips, store)
    first = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0 and "3 ok, 1 failed" in first.stdout, first.stdout
    # a rerun with nothing left ends before starting Ray
    probe = ("import sys; from hiermovie.workflows.cli import main; rc = main(sys.argv[1:]); "
             "print('ray imported' if 'ray' in sys.modules else 'no ray'); sys.exit(rc)")
    again = subprocess.run([sys.executable, "-c", probe, *cli[3:]], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 ok, 0 failed, 4 already stored" in again.stdout and "no ray" in again.stdout
    # a rerun with other settings is refused, also before Ray
    other = subprocess.run([sys.executable, "-c", probe, *cli[3:], "--plan.num_frames", "6"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and "num_frames" in other.stderr, other.stderr[-2000:]
    assert "sampling" in other.stderr and "no ray" in other.stdout
    (clips / "later.mp4").write_bytes((many_clips / "v4.mp4").read_bytes())  # now complete
    retry = subprocess.run([*cli, "--retry_failed", "true"], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert retry.returncode == 0, retry.stdout + retry.stderr[-2000:]
    s = FeatureStore(str(store))
    assert sorted(s.videos()) == ["later", "v0", "v1", "v2"] and not s.videos("failed")
    record("Faults", "rerun of a finished extract; then --retry_failed after a failed file "
           "was fixed", 2, "the rerun printed the same summary without starting Ray; the "
           "retry rewrote the failed video's shard, all 4 videos ok")


def test_ray_processes_go_with_a_killed_driver(many_clips, tmp_path):
    """kill -9 of the driver alone (not its process group, as a scheduler's OOM killer does):
    the Ray processes it started are gone within seconds, not minutes."""
    import psutil

    proc = subprocess.Popen(extract_cmd(many_clips, tmp_path / "s.zarr"), cwd=ROOT,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    driver = psutil.Process(proc.pid)
    tree: dict[int, psutil.Process] = {}
    try:
        deadline = time.time() + 90
        while time.time() < deadline and not any(
                "ray::" in " ".join(p.cmdline()) for p in tree.values() if p.is_running()):
            for p in driver.children(recursive=True):
                if "ray_reaper" not in " ".join(p.cmdline()):
                    tree[p.pid] = p
            time.sleep(0.2)
        assert proc.poll() is None, "the job ended before its Ray workers were seen"
        tree.update({p.pid: p for p in driver.children(recursive=True)
                     if "ray_reaper" not in " ".join(p.cmdline())})
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed = time.time()
        while any(p.is_running() for p in tree.values()) and time.time() - killed < 20:
            time.sleep(0.1)
        left = [" ".join(p.cmdline())[:80] for p in tree.values() if p.is_running()]
        gone_s = time.time() - killed
    finally:
        for p in tree.values():
            with __import__("contextlib").suppress(psutil.NoSuchProcess):
                p.kill()
    assert len(tree) >= 3 and not left, (len(tree), left)
    record("Processes left behind", "the driver alone SIGKILLed mid-run (its Ray processes "
           "not signalled)", 1, f"all {len(tree)} Ray processes it started were gone "
           f"{gone_s:.1f} s after the kill")


@pytest.mark.slow
def _has_a_shard(store) -> bool:
    """A committed shard in `store`; False while the job is still creating it (the folder
    exists before its Zarr metadata)."""
    try:
        return os.path.exists(store) and bool(complete_shards(str(store)))
    except StoreError:
        return False


def test_sigterm_stops_extract_as_ctrl_c_does(many_clips, tmp_path):
    """SIGTERM (a scheduler's or `kill`'s) once the first shard is stored: exit 143 with the
    one "interrupted; rerun" line, no native signal dump from Ray's handler, and the rerun
    finishes the store equal to an uninterrupted run's."""
    ref = tmp_path / "ref.zarr"
    assert run_extract(_cfg_from_args(many_clips, ref)) == 0
    store = tmp_path / "termed.zarr"
    proc = subprocess.Popen(extract_cmd(many_clips, store), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not _has_a_shard(store):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert "interrupted; rerun the same command to resume" in err
    assert "SIGTERM received" not in err
    done = subprocess.run(extract_cmd(many_clips, store), cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    same_store(str(ref), str(store))
    record('Faults',
           'SIGTERM to extract once a shard is stored',
           1,
           "exit 143 with the one 'interrupted; rerun' line, no native signal dump; the "
           'rerun equals an uninterrupted run')
