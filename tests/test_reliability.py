"""Reliability suite: bad videos, faults and kills across the jobs (the one-line refusals of
bad manifests, configs and locations are in test_cli.py and test_malformed_inputs.py).

Every test records what it tried and what happened (tests/reliability.py); the full run with
`--reliability-report RELIABILITY.md` writes the table (README: "Reliability").
"""

import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from hiermovie.datasets.video_io import write_video
from hiermovie.feature_store import FeatureStore, complete_shards
from tests.reliability import record
from tests.videos import make_audio_only, make_video, same_store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--backbone.name", "tiny3d/8", "--backbone.precision", "fp32", "--plan.num_frames", "4",
        "--progress", "false", "--num_cpus", "2"]
SLIDING = ["--plan.kind", "sliding", "--plan.window_s", "2", "--plan.stride_s", "2"]


def _cmd(*args) -> list[str]:
    return [sys.executable, "-m", "hiermovie.workflows.cli", *map(str, args)]


def _cli(*args, timeout=300, **kw):
    kw.setdefault("cwd", ROOT)
    return subprocess.run(_cmd(*args), capture_output=True, text=True, timeout=timeout, **kw)


def _rotate(src, dst, degrees_matrix=(0, 0x00010000, 0, 0xFFFF0000, 0, 0, 0, 0, 0x40000000)):
    """Copy an mp4 with a 90-degree display matrix in its track header (as phones write)."""
    data = bytearray(src.read_bytes())
    box = data.find(b"tkhd") - 4
    version = data[box + 8]
    at = box + 8 + 4 + (32 if version == 1 else 20) + 8 + 8
    data[at:at + 36] = struct.pack(">9I", *degrees_matrix)
    dst.write_bytes(bytes(data))
    return dst


def _faststart(src, dst):
    """Remux with the moov box at the start (as streaming sites serve mp4)."""
    import av

    with av.open(str(src)) as i, av.open(str(dst), "w", format="mp4",
                                         options={"movflags": "faststart"}) as o:
        stream = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(i.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                o.mux(packet)


# id -> (what it is, expected status, words the error must contain)
BAD_INPUTS = {
    "zero": ("zero-byte file", "failed", "empty file"),
    "text": ("text file renamed .mp4", "failed", "cannot open"),
    "trunc_moov_end": ("truncated mp4, moov at the end", "failed", "cannot open"),
    "trunc_moov_start": ("truncated mp4, moov at the start", "failed", "truncated"),
    "corrupt_middle": ("random bytes over the middle 20% of the file", "failed",
                       "decoding failed (corrupt or truncated data)"),
    "audio": ("audio-only mp4", "failed", "audio-only"),
    "one_frame": ("a single-frame video", "failed",
                  "the sliding plan (windows of 2 s every 2 s) needs"),
    "short": ("0.5 s clip, shorter than one 2 s segment", "failed",
              "needs at least 1 s (half the smaller of --plan.window_s"),
    "missing": ("a file named in the manifest that does not exist", "failed", "file not found"),
    "vfr": ("variable frame rate (gaps of 1/30 s and 1/10 s)", "ok", ""),
    "rotated": ("rotated 90 degrees by a display matrix", "ok", ""),
    "huge": ("3840x2160 (4K UHD) h264", "ok", ""),
    "ünïcode": ("non-ASCII file name", "ok", ""),
    "with space": ("file name with spaces", "ok", ""),
    "shell": ("file name `$(touch PWNED); rm -rf x`.mp4 (shell syntax)", "ok", ""),
    "../../escape": ("video id `../../escape` (path traversal)", "ok", ""),
}


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    good = make_video(d / "good.mp4", 4.0, 30.0, (64, 80))
    data = good.read_bytes()
    paths = {"good": good}
    for vid, content in {"zero": b"", "text": b"not a video\n" * 20,
                         "trunc_moov_end": data[: len(data) // 2]}.items():
        (d / f"{vid}.mp4").write_bytes(content)
        paths[vid] = d / f"{vid}.mp4"
    _faststart(good, d / "fast.mp4")
    fast = (d / "fast.mp4").read_bytes()
    (d / "trunc_moov_start.mp4").write_bytes(fast[: len(fast) // 2])
    paths["trunc_moov_start"] = d / "trunc_moov_start.mp4"
    rng = np.random.default_rng(0)
    corrupt = bytearray(data)
    a, b = int(len(data) * 0.4), int(len(data) * 0.6)
    corrupt[a:b] = rng.integers(0, 256, b - a, dtype=np.uint8).tobytes()
    (d / "corrupt_middle.mp4").write_bytes(bytes(corrupt))
    paths["corrupt_middle"] = d / "corrupt_middle.mp4"
    paths["audio"] = make_audio_only(d / "audio.mp4")
    write_video(d / "one_frame.mp4", [np.full((64, 80, 3), 128, np.uint8)], 30.0)
    paths["one_frame"] = d / "one_frame.mp4"
    paths["short"] = make_video(d / "short.mp4", 0.5)
    paths["missing"] = d / "missing.mp4"
    times = np.cumsum([0] + [1 / 30 if i % 2 else 1 / 10 for i in range(59)])
    frames = (np.roll(np.full((64, 80, 3), 60, np.uint8), i, 1) for i in range(60))
    write_video(d / "vfr.mp4", frames, 30.0, pts_s=times)
    paths["vfr"] = d / "vfr.mp4"
    _rotate(good, d / "rotated.mp4")
    paths["rotated"] = d / "rotated.mp4"
    big = np.random.default_rng(1).integers(0, 255, (2160, 3840, 3), dtype=np.uint8)
    write_video(d / "huge.mp4", (np.roll(big, 8 * i, 1) for i in range(20)), 8.0)
    paths["huge"] = d / "huge.mp4"
    for vid, name in {"ünïcode": "ünïcode clip.mp4", "with space": "with space.mp4",
                      "shell": "$(touch PWNED); rm -rf x.mp4",
                      "../../escape": "escape.mp4"}.items():
        shutil.copy(good, d / name)
        paths[vid] = d / name
    return d, paths


@pytest.mark.slow
def test_bad_inputs_are_recorded_and_the_job_goes_on(bad_folder, tmp_path):
    d, paths = bad_folder
    manifest = tmp_path / "m.jsonl"
    import json

    manifest.write_text("".join(json.dumps({"video_id": v, "path": str(p)}) + "\n"
                                for v, p in paths.items()))
    store = tmp_path / "out" / "s.zarr"
    before = sorted(os.listdir(tmp_path))
    r = _cli("extract", "--input", manifest, "--store", store, *TINY, *SLIDING, cwd=d)
    assert r.returncode == 0, r.stderr[-3000:]  # bad inputs are not faults
    s = FeatureStore(str(store))
    assert s.entry("good").status == "ok"
    for vid, (what, status, words) in BAD_INPUTS.items():
        e = s.entry(vid)
        if status is not None:
            assert e.status == status, (vid, e.error)
        if e.status == "failed":
            assert str(paths[vid]) in e.error and words in e.error, (vid, e.error)
        outcome = (f"failed, recorded: \"{e.error[len(str(paths[vid])) + 2:][:90]}\""
                   if e.status == "failed" else f"ok, {s.get(vid).shape[0]} segments")
        record("Bad inputs (extract; job goes on, exit 0)", what, 1, outcome)
    assert not (d / "PWNED").exists() and not (tmp_path / "PWNED").exists()
    assert set(os.listdir(tmp_path)) == set(before) | {"out"}
    assert not (tmp_path / "escape").exists()  # ids never become paths
    frames_rot = s.frame_indices("rotated")
    np.testing.assert_array_equal(frames_rot, s.frame_indices("good"))
    record("Security", "shell syntax in a file name; `../../escape` as a video id", 1,
           "used as given: no shell ran, nothing written outside the store (shards are named "
           "by hashes)")
    assert _cli("extract", "--input", manifest, "--store", store, *TINY, *SLIDING,
                "--strict", "true").returncode == 3
    record("Bad inputs (extract; job goes on, exit 0)", "the same run with --strict", 1,
           "exit code 3 (bad inputs only), nothing rewritten")


@pytest.fixture(scope="module")
def reference(many_clips, tmp_path_factory):
    store = tmp_path_factory.mktemp("ref") / "ref.zarr"
    r = _cli("extract", "--input", many_clips, "--store", store, "--videos_per_shard", "2", *TINY)
    assert r.returncode == 0, r.stderr[-2000:]
    return store


def _ray_workers(name: str, parent: int) -> list:
    import psutil

    try:
        kids = psutil.Process(parent).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for p in kids:
        try:
            if name in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            pass
    return out


@pytest.mark.slow
@pytest.mark.parametrize("target, sig, what", [
    ("ray::decode_item", signal.SIGSEGV, "a decode task's worker crashes as a native decoder "
     "would (SIGSEGV)"),
    ("ray::ModelWorker", signal.SIGKILL, "the model actor's process is killed (SIGKILL)")])
def test_ray_worker_killed_mid_task_is_retried(many_clips, reference, tmp_path, target, sig, what):
    store = tmp_path / "s.zarr"
    cmd = _cmd("extract", "--input", many_clips, "--store", store, "--videos_per_shard", "2", *TINY)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    killed = None
    deadline = time.time() + 120
    while killed is None and time.time() < deadline and proc.poll() is None:
        workers = _ray_workers(target, proc.pid)
        if workers and (target != "ray::ModelWorker" or os.path.exists(store)):
            killed = workers[0].pid
            os.kill(killed, sig)
        time.sleep(0.05)
    out, err = proc.communicate(timeout=300)
    assert killed, f"no {target} process seen"
    assert proc.returncode == 0, err[-3000:]
    same_store(reference, store)
    record("Faults", f"extract mid-job: {what}", 1,
           "the task was retried (the actor restarted), the job completed with exit 0 and a "
           "store identical to an uninterrupted run")


@pytest.mark.slow
def test_disk_full_gives_a_clear_error_and_a_rerun_completes(many_clips, reference, tmp_path):
    if not shutil.which("unshare"):
        pytest.skip("needs util-linux `unshare` to mount a private small tmpfs")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k none "
                            f"{tmp_path}"], capture_output=True)
    if probe.returncode:
        pytest.skip(f"cannot mount a private tmpfs here: {probe.stderr.decode()[:200]}")
    full = tmp_path / "full"
    full.mkdir()
    copy = tmp_path / "copy.zarr"
    extract = " ".join(_cmd("extract", "--input", many_clips, "--store", f"{full}/s.zarr",
                            "--videos_per_shard", "2", *TINY))
    script = (f"mount -t tmpfs -o size=160k none {full} && cd {ROOT} && "
              f"({extract}; echo rc=$? >&2); cp -r {full}/s.zarr {copy}")
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                       timeout=300)
    assert "rc=1" in r.stderr, r.stderr[-3000:]  # a fault, not a bad input
    message = [ln for ln in (r.stdout + r.stderr).splitlines() if "No space left" in ln]
    assert message, (r.stdout + r.stderr)[-3000:]
    assert "Traceback" not in r.stdout + r.stderr
    seen = FeatureStore(str(copy))  # still opens; only complete shards are visible
    assert len(seen.shard_names) == len(complete_shards(str(copy))) < 4
    summary = next(ln for ln in r.stdout.splitlines() if " ok, " in ln)
    assert summary.startswith(f"extract: {len(seen.videos())} ok,"), summary  # committed only
    assert "finished video(s) not stored" in r.stdout
    rerun = _cli("extract", "--input", many_clips, "--store", copy, "--videos_per_shard", "2",
                 *TINY)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    same_store(reference, copy)
    record("Faults", "disk full while writing (extract on a 160 KiB tmpfs)", 1,
           f"exit 1 with `{message[0].strip()[:110]}`; the store opened with "
           f"{len(seen.shard_names)} complete shards; a rerun on free space completed it, "
           "identical to an uninterrupted run")


@pytest.mark.slow
def test_pretrain_ctx_killed_and_resumed_follows_the_same_curve(reference, tmp_path):
    import json

    args = ["pretrain-ctx", "--store", reference, "--steps", "40", "--batch_size", "4",
            "--val_every", "20", "--ckpt_every", "5", "--val_fraction", "0.25",
            "--model.width", "32", "--model.heads", "4", "--model.ffn", "64",
            "--model.layers", "1", "--progress", "false", "--device", "cpu"]
    ref = _cli(*args, "--out", tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-2000:]
    out = tmp_path / "killed"
    cmd = _cmd(*args, "--out", out, "--resume", "true")

    def last_step() -> int:  # the job's own log: a kill lands mid-run however fast the CPU
        path = out / "metrics.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        steps = [json.loads(ln).get("step", 0) for ln in lines if ln.endswith("}")]
        return max(steps, default=0)

    rng, kills = random.Random(0), 0
    for target in sorted(rng.sample(range(3, 38), 3)):
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while proc.poll() is None and last_step() < target:
            time.sleep(0.02)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills == 3, f"the job ended after {kills} kills: it was not killed mid-run"
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    def curve(p):
        return [(r["step"], r["loss"]) for r in map(json.loads, (p / "metrics.jsonl")
                                                    .read_text().splitlines())]
    assert curve(out) == curve(tmp_path / "ref")
    record("Faults", "pretrain-ctx SIGKILLed at random moments, then resumed", kills,
           "same loss curve as an uninterrupted run, step for step (40 steps)")


def test_nan_features_from_an_imported_file_are_refused(tmp_path):
    from hiermovie.feature_store.interop import import_npy_folder

    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "ok_feats.npy", np.ones((3, 8), np.float32))
    bad = np.ones((3, 8), np.float32)
    bad[1, 2] = np.nan
    np.save(folder / "bad_feats.npy", bad)
    with pytest.raises(ValueError, match="bad_feats.npy: features of 'bad' contain 1 NaN/Inf") as e:
        import_npy_folder(str(folder), str(tmp_path / "s.zarr"))
    assert not (tmp_path / "s.zarr").exists()
    record("Faults", "NaN in features of an imported .npy file", 1,
           f"refused: `{str(e.value)[:100]}`")


def test_rotated_video_is_read_upright(tmp_path):
    from hiermovie.pipeline.decode import decode_video
    from hiermovie.pipeline.plans import PlanConfig

    paths = {"good": make_video(tmp_path / "good.mp4", 4.0, 30.0, (64, 80))}
    paths["rotated"] = _rotate(paths["good"], tmp_path / "rotated.mp4")
    plan = PlanConfig(kind="sliding", num_frames=2, sampling_rate=4)
    upright = decode_video(str(paths["good"]), plan, (64, 64)).frames[0, 0].astype(float)
    shown = decode_video(str(paths["rotated"]), plan, (64, 64)).frames[0, 0].astype(float)
    diff = {k: np.abs(np.rot90(upright, k) - shown).mean() for k in (0, 1, 2, 3)}
    assert min(diff, key=diff.get) == 3 and diff[3] < diff[0] / 3  # turned 90 degrees clockwise
    record("Bad inputs (extract; job goes on, exit 0)", "orientation of the rotated video", 1,
           "decoded as displayed (the display matrix is applied), not as stored")
