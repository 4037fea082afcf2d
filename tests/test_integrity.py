"""Nothing non-finite is stored or trained on: every write path checks the values as stored, a
video without segments is never ok, training readers skip what an older store holds, and a
loss that turns non-finite stops the job before the update."""

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from hiermovie.config import from_dict
from hiermovie.feature_store import FeatureStore, Provenance, VideoRecord
from hiermovie.feature_store.writer import StoreError
from hiermovie.workflows.cli import main
from hiermovie.workflows.pretrain_ctx import PretrainCtxConfig, run_pretrain_ctx
from tests.conftest import write_store
from tests.reliability import record


def _rec(vid: str, feats: np.ndarray) -> VideoRecord:
    n = len(feats)
    start = np.arange(n) * 2.0
    return VideoRecord(vid, feats[:, None], start, start + 2, np.zeros((n, 0), np.int64))


def _clips(n: int = 24, seed: int = 0, scale: float = 1.0) -> list[VideoRecord]:
    rng = np.random.default_rng(seed)
    return [_rec(f"v{i:02d}", (scale * (rng.standard_normal(8) + 0.3 * rng.standard_normal(
        (5, 8)))).astype(np.float32)) for i in range(n)]


def test_import_checks_values_as_stored(tmp_path, capsys):
    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "ok_feats.npy", np.ones((3, 8), np.float32))
    big = np.ones((3, 8), np.float32)
    big[0, 0] = 1e5  # finite in float32, Inf in float16
    np.save(folder / "big_feats.npy", big)
    url = str(tmp_path / "s.zarr")
    assert main(["store", "import", str(folder), url, "--dtype", "float16"]) == 2
    err = capsys.readouterr().err
    assert "big_feats.npy: features of 'big' contain 1 NaN/Inf values as stored in float16" in err
    assert not Path(url).exists()  # nothing imported
    assert main(["store", "import", str(folder), url, "--dtype", "float32"]) == 0
    np.testing.assert_array_equal(FeatureStore(url).get("big")[:, 0], big)
    record("Non-finite values", "`store import --dtype float16` of a value beyond float16's "
           "range", 1, "exit 2 naming the file and the overflow, nothing written; float32 "
           "imports it")


def test_import_refuses_a_video_without_segments(tmp_path, capsys):
    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "empty_feats.npy", np.zeros((0, 8), np.float32))
    assert main(["store", "import", str(folder), str(tmp_path / "s.zarr")]) == 2
    assert "features of 'empty' have no segments" in capsys.readouterr().err
    record("Non-finite values", "`store import` of an array of zero segments", 1,
           "exit 2: 'have no segments', never an ok video")


def test_writer_refuses_ok_videos_not_storable(tmp_path):
    url = str(tmp_path / "s.zarr")
    with FeatureStore.open(url, "a") as store:
        store.create(Provenance(backbone="t", dim=8, dtype="float16"))
        with pytest.raises(StoreError, match="'a' contain 8 NaN/Inf values as stored in float16"):
            store.write([_rec("a", np.full((1, 8), 7e4, np.float32))])
        with pytest.raises(StoreError, match="'b' have no segments"):
            store.write([_rec("b", np.zeros((0, 8), np.float32))])
        store.write([VideoRecord.failed("c", "bad file", tokens=1, dim=8)])  # failed: fine
    assert FeatureStore(url).videos(status=None) == ["c"]


def test_extract_fails_a_video_whose_features_overflow_the_stored_dtype(tmp_path):
    from hiermovie.datasets import VideoItem
    from hiermovie.workflows.extract.report import ExtractRun

    run = ExtractRun([["a", "b"]], tokens=1, dim=8, frames=0,
                     report_path=tmp_path / "report.md", dtype="float16")
    meta = {"status": "ok", "error": "", "start_s": np.zeros(1), "end_s": np.ones(1),
            "frame_indices": np.zeros((1, 0), np.int64), "duration_s": 2.0, "fps": 30.0,
            "num_frames": 60}
    run.finish(0, VideoItem("a", "a.mp4"), meta, np.full((1, 1, 8), 1e5, np.float32))
    run.finish(0, VideoItem("b", "b.mp4"), meta, np.ones((1, 1, 8), np.float32))
    run.close()
    a, b = run.records[0]["a"], run.records[0]["b"]
    assert a.status == "failed" and "as stored in float16" in a.error and "a.mp4" in a.error
    assert b.status == "ok" and "a" in run.failures
    assert run.ok == 0  # counted when its shard is committed, not before
    run.committed(run.take(0))
    assert run.ok == 1 and run.segments == 1
    record("Non-finite values", "extract: finite backbone features beyond float16's range",
           1, "the video is failed with the reason (not a fault to retry), never ok")


def test_training_readers_skip_what_an_older_store_holds(tmp_path, capsys):
    """A store written before these checks (or by another tool) may hold NaN features and ok
    videos of zero segments: pretrain-ctx skips them, naming them, and trains finite."""
    url = str(tmp_path / "s.zarr")
    write_store(url, Provenance(backbone="t", dim=8, dtype="float32"), _clips())
    shard = next(iter(zarr.open_group(url, mode="r")["shards"].group_keys()))
    arr = zarr.open_group(url, mode="a")[f"shards/{shard}/features"]
    arr[0, 0, 3] = np.nan  # video v00's first segment, as an older writer could store it
    assert FeatureStore(url).unusable() == {
        "v00": "contain 1 NaN/Inf values as stored in float32 (float32 holds |x| <= 3.40282e+38)"}
    out = tmp_path / "ctx"
    assert run_pretrain_ctx(from_dict(PretrainCtxConfig, {
        "store": [url], "out": str(out), "steps": 6, "batch_size": 4, "val_every": 3,
        "progress": False, "model": {"width": 16, "ffn": 32, "heads": 2, "layers": 1}})) == 0
    assert "skipping 1 video(s) whose stored features are unusable: v00" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert np.isfinite(summary["val_loss"]) and "v00" in summary["selection"]["skipped_unusable"]
    losses = [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(losses))
    record("Non-finite values", "pretrain-ctx on a store holding a NaN video (older writer)", 1,
           "the video is skipped and named; every loss finite")


def test_a_non_finite_loss_stops_training_before_the_update(tmp_path, capsys):
    """Finite features so large that the forward pass overflows: the first loss is NaN; the job
    exits 1 at that step, publishes nothing, and an earlier checkpoint stays as it was."""
    url = str(tmp_path / "s.zarr")
    write_store(url, Provenance(backbone="t", dim=8, dtype="float32"), _clips())
    huge = str(tmp_path / "huge.zarr")
    write_store(huge, Provenance(backbone="t", dim=8, dtype="float32"), _clips(scale=1e37))
    out = tmp_path / "ctx"
    kw = {"out": str(out), "steps": 8, "batch_size": 4, "val_every": 4, "ckpt_every": 2,
          "progress": False, "model": {"width": 16, "ffn": 32, "heads": 2, "layers": 1}}
    assert run_pretrain_ctx(from_dict(PretrainCtxConfig, {
        **kw, "store": [url], "stop_at": 4})) == 0  # a good checkpoint at step 4
    good = (out / "checkpoint.pt").read_bytes()
    assert main(["pretrain-ctx", "--store", huge, "--out", str(out), "--steps", "8",
                 "--batch_size", "4", "--val_every", "4", "--ckpt_every", "2", "--resume",
                 "true", "--progress", "false", "--model.width", "16", "--model.ffn", "32",
                 "--model.heads", "2", "--model.layers", "1"]) == 1
    err = capsys.readouterr().err
    assert "training loss is nan at step 5; stopped before that update" in err
    assert "(step 4) holds the last good weights" in err
    assert (out / "checkpoint.pt").read_bytes() == good
    assert not (out / "summary.json").exists() and not (out / "contextualizer").exists()
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last == {"step": 5, "loss": None, "stopped": "non-finite loss"}
    record("Non-finite values", "pretrain-ctx whose loss turns NaN (finite features of 1e37)",
           1, "exit 1 at that step, before the update; the last checkpoint unchanged, "
           "nothing published")


def test_every_entry_of_an_input_folder_is_accounted_for(tmp_path, capsys):
    """Stored, failed with a reason, or listed as skipped with a reason: never silently
    dropped (a folder named like a video, a broken link, a pipe, a link loop, hidden and
    suffix-less files)."""
    import os

    from hiermovie.datasets.manifest import scan_folder
    from tests.videos import make_video

    d = tmp_path / "in"
    (d / "sub.mp4").mkdir(parents=True)  # a folder named like a video: its contents count
    make_video(d / "sub.mp4" / "inner.mp4", 4.0, size=(48, 64))
    make_video(d / "a.mp4", 4.0, size=(48, 64))
    (d / "notes.txt").write_text("x")
    (d / "README").write_text("x")
    (d / ".DS_Store").write_bytes(b"\0")
    (d / "bad.mp4").write_bytes(b"not a video")
    os.symlink(tmp_path / "nowhere.mp4", d / "gone.mp4")
    os.mkfifo(d / "pipe.mp4")
    os.symlink(d, d / "sub.mp4" / "loop")
    items, skipped = scan_folder(d)
    assert [i.video_id for i in items] == ["a", "bad", "sub.mp4/inner"]
    assert skipped == {
        ".DS_Store": "a hidden file", "README": "not a video by its suffix (none)",
        "gone.mp4": "a link to nothing", "notes.txt": "not a video by its suffix (.txt)",
        "pipe.mp4": "a named pipe, not a file",
        "sub.mp4/loop": "a link back to a folder already scanned (not followed)"}
    report = tmp_path / "report.json"
    assert main(["extract", "--input", str(d), "--store", str(tmp_path / "s.zarr"),
                 "--report", str(report), "--progress", "false", "--plan.kind", "sliding",
                 "--backbone.input_size", "32"]) == 0
    rep = json.loads(report.read_text())
    assert rep["skipped_files"] == skipped and set(rep["failures"]) == {"bad"}
    assert FeatureStore(str(tmp_path / "s.zarr")).videos() == ["a", "sub.mp4/inner"]
    out = capsys.readouterr().out
    assert "skipped 6 entries that are not videos: .DS_Store (a hidden file)" in out
    record("Inputs accounted for", "a folder with a video-named folder, a broken link, a "
           "pipe, a link loop, hidden and suffix-less files and a corrupt video", 1,
           "every entry stored, failed with its reason or listed as skipped with its reason "
           "(summary and report)")


def test_a_read_only_store_location_is_one_line_before_any_work(tmp_path):
    import shutil
    import subprocess
    import sys

    from tests.videos import make_video

    if not shutil.which("unshare"):
        pytest.skip("needs util-linux `unshare` to mount a private read-only tmpfs")
    make_video(tmp_path / "in" / "a.mp4", 4.0, size=(48, 64))
    ro = tmp_path / "ro"
    ro.mkdir()
    cmd = (f"mount -t tmpfs -o ro none {ro} || exit 99; {sys.executable} -m "
           f"hiermovie.workflows.cli extract --input {tmp_path / 'in'} --store {ro}/s.zarr "
           "--progress false --plan.kind sliding")
    r = subprocess.run(["unshare", "-rm", "sh", "-c", cmd], capture_output=True, text=True,
                       timeout=120)
    if r.returncode == 99:
        pytest.skip(f"cannot mount a private tmpfs here: {r.stderr[:200]}")
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [f"hiermovie extract: error: {ro}/s.zarr: cannot write the store there "
                     "(Read-only file system); give a writable location"], r.stderr[-2000:]
    assert "Started a local Ray" not in r.stdout + r.stderr  # refused before any work
    record("Store location", "extract into a read-only file system", 1,
           "exit 2 before Ray starts, one line naming the store and the reason")


def test_a_store_location_that_goes_away_does_not_break_the_lease(tmp_path):
    import shutil

    from hiermovie.feature_store.lease import Lease

    url = tmp_path / "s.zarr"
    url.mkdir()
    lease = Lease(str(url)).acquire()
    shutil.rmtree(url)  # the location goes away mid-job
    lease.refresh(force=True)  # the job's own writes report it (exit 1), not the lease
    lease.release()  # and the exit is not a traceback
    with pytest.raises(StoreError, match="cannot write here"):
        Lease(str(tmp_path / "gone" / "s.zarr")).acquire()  # before any work: refused
    record("Store location", "the store's folder deleted while the job holds its lease", 1,
           "refresh and release at exit stay quiet; the shard writes fail as faults (exit 1)")


def _tamper(url: str, how: str) -> str:
    """Edit a written store as a careless tool or a person might; returns the shard's name."""
    shard = sorted(p for p in (Path(url) / "shards").iterdir() if p.is_dir())[0]
    if how == "dtype":
        meta = shard / "features" / "zarr.json"
        m = json.loads(meta.read_text())
        m["data_type"] = "float64"
        meta.write_text(json.dumps(m))
    elif how == "rows":
        meta = shard / "zarr.json"
        m = json.loads(meta.read_text())
        m["attributes"]["index"]["num_segments"][0] += 1
        meta.write_text(json.dumps(m))
    elif how == "width":
        meta = Path(url) / "zarr.json"
        m = json.loads(meta.read_text())
        m["attributes"]["hiermovie"]["provenance"]["dim"] = 16
        meta.write_text(json.dumps(m))
    else:  # a chunk file cut short
        chunk = next(p for p in (shard / "features").rglob("*") if p.is_file()
                     and p.name != "zarr.json")
        chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    return shard.name


@pytest.mark.parametrize("how", ["dtype", "rows", "width", "truncated chunk"])
def test_a_tampered_store_is_named_by_store_info_and_refused_by_readers(tmp_path, capsys, how):
    """A shard's metadata edited (dtype, rows, the provenance's width) or a chunk cut short:
    `store info` said "sound" with exit 0 and pretrain-ctx died with a traceback ("cannot
    reshape", "mat1 and mat2 shapes cannot be multiplied"). Now store info names the shard
    (the truncated chunk with --verify, which reads every chunk) and exits 2, and
    pretrain-ctx refuses in one line naming it."""
    url = str(tmp_path / "s.zarr")
    write_store(url, Provenance(backbone="t", dim=8, dtype="float32"), _clips())
    assert main(["store", "info", url, "--verify"]) == 0
    assert "check      sound" in capsys.readouterr().out
    shard = _tamper(url, how)
    flags = ["--verify"] if how == "truncated chunk" else []
    assert main(["store", "info", url, *flags]) == 2
    out, err = capsys.readouterr()
    if how == "rows":  # the shard's commit record itself no longer adds up: refused on open
        assert f"shard {shard} is marked complete but its index does not add up" in err
    else:
        assert f"check      shard {shard}" in out and "do not match the schema" in err
    rc = main(["pretrain-ctx", "--store", url, "--out", str(tmp_path / "ctx"), "--steps", "2",
               "--progress", "false", "--model.width", "16", "--model.ffn", "32",
               "--model.heads", "2", "--model.layers", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and shard in err and len(err.splitlines()) == 1, err
    record("Tampered stores", f"a shard's {how} edited; pretrain-ctx and store info on it", 1,
           "store info names the shard, exit 2; pretrain-ctx refuses in one line naming it")
