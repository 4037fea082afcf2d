import json
import os
import pickle
import time

import numpy as np
import pytest
import torch

from hiermovie.config import from_dict
from hiermovie.feature_store import FeatureStore
from hiermovie.pipeline.backbones import BackboneConfig, encode, load_backbone, load_state_dict
from hiermovie.pipeline.decode import decode_video
from hiermovie.pipeline.plans import PlanConfig, frames_at, plan_segments
from hiermovie.workflows.extract import ExtractConfig, run_extract, start_local_ray
from tests.reliability import record
from tests.videos import make_bad_files, make_video

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_session():
    start_local_ray(2)  # as `extract` starts it
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    make_video(d / "a30.mp4", 10.0, 30.0, (96, 128), seed=1)
    make_video(d / "b25.mp4", 10.4, 25.0, (120, 160), seed=2)
    make_video(d / "c24.mkv", 11.0, 23.976, (72, 96), seed=3)
    make_video(d / "d15.avi", 10.0, 15.0, (64, 96), seed=4, codec="mpeg4")
    return d


def _cfg(inp, store, **kw):
    base = {"input": str(inp), "store": str(store), "progress": False, "videos_per_shard": 2,
            "backbone": {"name": "tiny3d/8", "precision": "fp32", "batch_size": 3},
            "plan": {"num_frames": 8, "sampling_rate": 4}}
    base.update(kw)
    return from_dict(ExtractConfig, base)


def test_vidsitu_plan_matches_reference_indices():
    # VidSitu: event i centred at frame int((i+0.5)*60), 64-frame window, stride 2, clamped
    cfg = PlanConfig(kind="vidsitu", num_frames=32, sampling_rate=2)
    segs = plan_segments(cfg, np.arange(300) / 30.0, 10.0)
    for i, s in enumerate(segs):
        centre = int((i + 0.5) * 60)
        ref = np.clip(np.arange(centre - 32, centre + 32, 2), 0, 299)
        np.testing.assert_array_equal(s.frame_indices, ref)
        assert (s.start_s, s.end_s) == (2.0 * i, 2.0 * i + 2)


def test_frames_at_handles_variable_frame_rate():
    stamps = np.array([0.0, 0.1, 0.15, 0.5, 0.55])
    np.testing.assert_array_equal(frames_at(stamps, np.array([0, 0.12, 0.49, 0.5, 9])),
                                  [0, 1, 2, 3, 4])


def test_local_ray_keeps_idle_decode_workers(ray_session):
    """With model actors holding half the CPUs, decode workers idle between videos are kept,
    not killed and restarted (Ray's default keeps one idle worker per unreserved CPU)."""

    @ray.remote(num_cpus=0.5)
    class Holder:
        def ready(self) -> bool:
            return True

    def pid_after(seconds: float) -> int:  # defined here: workers cannot import tests/
        time.sleep(seconds)
        return os.getpid()

    holders = [Holder.remote() for _ in range(2)]
    ray.get([h.ready.remote() for h in holders])
    task = ray.remote(num_cpus=0.5)(pid_after)
    first = set(ray.get([task.remote(0.5) for _ in range(2)]))  # two at once: two processes
    time.sleep(2.5)  # idle past Ray's 1 s idle-worker threshold
    second = set(ray.get([task.remote(0.5) for _ in range(2)]))
    for h in holders:
        ray.kill(h)
    assert len(first) == 2 and second == first


def test_store_equals_direct_forward(ray_session, clips, tmp_path):
    cfg = _cfg(clips, tmp_path / "s.zarr", plan={"kind": "vidsitu", "num_frames": 8,
                                                   "sampling_rate": 4})
    assert run_extract(cfg) == 0
    store = FeatureStore(str(tmp_path / "s.zarr"))
    assert sorted(store.videos()) == ["a30", "b25", "c24", "d15"]
    model = load_backbone(cfg.backbone)
    for vid, name in [("a30", "a30.mp4"), ("b25", "b25.mp4"), ("c24", "c24.mkv"),
                      ("d15", "d15.avi")]:
        d = decode_video(str(clips / name), cfg.resolved(False)[0].plan, (112, 112))
        direct = encode(model, d.frames, cfg.backbone)
        got = store.get(vid).astype(np.float32)
        np.testing.assert_allclose(got, direct, rtol=2e-3, atol=2e-3)  # float16 rounding
        np.testing.assert_array_equal(store.frame_indices(vid),
                                      np.stack([s.frame_indices for s in d.segments]))
        assert store.times(vid)[0].tolist() == [0, 2, 4, 6, 8]
    # stored indices are the documented plan: a30 is exactly 30 fps
    ref = np.clip(np.arange(30 - 16, 30 + 16, 4), 0, 299)
    np.testing.assert_array_equal(store.frame_indices("a30")[0], ref)
    report = json.loads((tmp_path / "s.zarr.report.json").read_text())
    assert report["ok"] == 4 and report["segments"] == 20


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_store_equals_direct_forward(ray_session, clips, tmp_path):
    """The GPU path: a GPU actor batches segments of several videos per call, in bf16."""
    assert ray.cluster_resources().get("GPU", 0) >= 1
    backbone = {"name": "tiny3d/8", "precision": "bf16", "batch_size": 7}
    cfg = _cfg(clips, tmp_path / "g.zarr", backbone=backbone, videos_per_call=3)
    assert run_extract(cfg) == 0
    store = FeatureStore(str(tmp_path / "g.zarr"))
    assert store.provenance.preprocessing["precision"] == "bfloat16"
    model = load_backbone(cfg.backbone).cuda()
    for vid, name in [("a30", "a30.mp4"), ("d15", "d15.avi")]:
        d = decode_video(str(clips / name), cfg.resolved(False)[0].plan, (112, 112))
        direct = encode(model, d.frames, cfg.backbone, "cuda")
        got = store.get(vid).astype(np.float32)
        cos = (got * direct).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(direct,
                                                                                   axis=-1)
        assert cos.min() > 0.99  # bf16, and batched with other videos' segments


def test_same_inputs_give_bitwise_identical_stores(ray_session, clips, tmp_path):
    for name in ("one", "two"):
        assert run_extract(_cfg(clips, tmp_path / f"{name}.zarr", model_workers=2)) == 0
    a, b = FeatureStore(str(tmp_path / "one.zarr")), FeatureStore(str(tmp_path / "two.zarr"))
    assert a.shard_names == b.shard_names
    for vid in a.videos():
        assert a.get(vid).tobytes() == b.get(vid).tobytes()


def test_bad_videos_are_recorded_and_job_goes_on(ray_session, clips, tmp_path):
    folder = tmp_path / "mixed"
    bad = make_bad_files(folder, clips / "a30.mp4")
    make_video(folder / "good.mp4", 10.0)
    (folder / "sub dir").mkdir()
    make_video(folder / "sub dir" / "ünïcode clip.mp4", 10.0)
    store = tmp_path / "s.zarr"
    assert run_extract(_cfg(folder, store)) == 0
    assert run_extract(_cfg(folder, store, strict=True)) == 3  # failures are bad inputs
    s = FeatureStore(str(store))
    # a folder of clips gets windows over each whole clip: the 1-s one is stored too
    assert sorted(s.videos()) == ["good", "short", "sub dir/ünïcode clip"]
    bad.pop("short")
    failed = {v: s.entry(v).error for v in s.videos(status="failed")}
    assert set(failed) == set(bad)
    for vid, path in bad.items():
        assert str(path) in failed[vid]
    assert "empty file" in failed["zero"]
    assert "audio-only" in failed["audio"]


def test_manifest_with_a_missing_file(ray_session, clips, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"video_id,path\nok,{clips / 'a30.mp4'}\ngone,{tmp_path / 'gone.mp4'}\n")
    assert run_extract(_cfg(manifest, tmp_path / "s.zarr")) == 0
    s = FeatureStore(str(tmp_path / "s.zarr"))
    assert s.videos() == ["ok"]
    assert s.entry("gone").error == f"{tmp_path / 'gone.mp4'}: file not found"


def test_sliding_plan_and_token_grid(ray_session, clips, tmp_path):
    cfg = _cfg(clips, tmp_path / "s.zarr", plan={"kind": "sliding", "window_s": 1.0,
                                                  "stride_s": 1.0, "num_frames": 4})
    cfg.backbone.tokens = [2, 2, 2]
    assert run_extract(cfg) == 0
    s = FeatureStore(str(tmp_path / "s.zarr"))
    assert s.provenance.tokens_per_segment == 8
    assert s.get("c24").shape == (11, 8, s.provenance.dim)
    assert s.get("b25").shape[0] == 10  # 10.4 s: the 0.4 s tail is under half a window


class Boom:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_malicious_checkpoint_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model_state": {"w": Boom()}}, f)
    with pytest.raises(ValueError, match="refused to load"):
        load_state_dict(str(path))
    assert "pickled code ran" not in capsys.readouterr().out
    good = tmp_path / "ok.pt"
    model = load_backbone(BackboneConfig(name="tiny3d/8"))
    torch.save({"model_state": model.state_dict()}, good)
    reloaded = load_backbone(BackboneConfig(name="tiny3d/8", weights=str(good), seed=99))
    for k, v in model.state_dict().items():
        assert torch.equal(v, reloaded.state_dict()[k])
    record("Security", "backbone checkpoint whose pickle runs `print` when loaded", 1,
           "refused with `refused to load: the file holds pickled objects other than tensors`; "
           "the code never ran; a plain state dict still loads")


def test_explicit_segments_spread_over_the_segment_and_clamped_at_the_end(ray_session,
                                                                           tmp_path):
    video = make_video(tmp_path / "long.mp4", 20.0, 30.0, (64, 80))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"video_id,path,start_s,end_s\nv,{video},0,20\nv,{video},15,25\n")
    plan = {"kind": "explicit", "num_frames": 4, "coverage": "spread", "clips_per_segment": 2,
            "clip_pool": "tokens"}
    store = tmp_path / "s.zarr"
    assert run_extract(_cfg(manifest, store, plan=plan)) == 0
    s = FeatureStore(str(store))
    idx = s.frame_indices("v")
    assert idx.shape == (2, 8) and s.get("v").shape == (2, 2, s.provenance.dim)  # 2 clip tokens
    # 8 frames at the middles of equal steps over 0-20 s: 1.25 s, 3.75 s, ... 18.75 s
    np.testing.assert_array_equal(idx[0], np.floor((np.arange(8) + 0.5) * 2.5 * 30).astype(int))
    assert idx[0].min() < 0.1 * 600 and idx[0].max() > 0.9 * 600  # spans the segment
    start, end = s.times("v")
    assert end[1] == pytest.approx(20.0, abs=0.05)  # 15-25 s cut at the video's end
    report = json.loads((tmp_path / "s.zarr.report.json").read_text())
    assert report["segments_clamped_at_video_end"] == {"v": 1}
    strict = run_extract(_cfg(manifest, tmp_path / "t.zarr", plan=plan, strict=True))
    assert strict == 3
    err = FeatureStore(str(tmp_path / "t.zarr")).entry("v").error
    assert "ends after the video ends" in err and str(video) in err
    record("Bad inputs (extract; job goes on, exit 0)", "explicit segment 15-25 s on a 20-s "
           "video", 2, "cut at 20 s and counted in the report; refused naming the file under "
           "--strict (exit 3)")


def test_shard_writes_retry_a_transient_error_but_not_a_full_disk(monkeypatch, tmp_path):
    import errno

    from hiermovie.feature_store import store_writer

    calls = []

    def write_shard(url, records, storage_options=None):
        calls.append(url)
        if len(calls) == 1 or url.endswith("full"):
            code = errno.ENOSPC if url.endswith("full") else errno.EIO
            raise OSError(code, os.strerror(code))
        return "shard"

    monkeypatch.setattr(store_writer, "_write_shard", write_shard)
    monkeypatch.setattr(store_writer.time, "sleep", lambda s: None)
    flaky, full = (FeatureStore.open(str(tmp_path / n), "a") for n in ("flaky", "full"))
    for store in (flaky, full):
        store.leased = True  # as after create: the retry policy is what is tested here
    assert flaky.write([]) == "shard" and len(calls) == 2
    calls.clear()
    with pytest.raises(OSError, match="No space left"):
        full.write([])
    assert len(calls) == 1  # no retry: waiting does not free space


def test_a_film_is_streamed_in_bounded_parts_equal_to_the_whole(ray_session, tmp_path):
    """Memory flat in a film's length: the decoder hands the model whole forward batches of at
    most PART_BYTES of frames, never the whole video, and the stored features are the whole
    video's, bitwise (on CPU), as one pass over all its frames gives them."""
    from hiermovie.pipeline.decode import DecodeSpec, decode_item
    from hiermovie.workflows.extract.config import PART_BYTES

    make_video(tmp_path / "in" / "film.mp4", 90.0, 10.0, (48, 64), seed=5)
    cfg = _cfg(tmp_path / "in", tmp_path / "s.zarr",
               plan={"kind": "sliding", "window_s": 1, "stride_s": 1, "num_frames": 8,
                     "sampling_rate": 4})
    per = cfg.part_segments(112)
    assert per % cfg.backbone.batch_size == 0 and per * 8 * 112 * 112 * 3 <= PART_BYTES
    items = list(decode_item(str(tmp_path / "in" / "film.mp4"), None,
                             DecodeSpec(cfg.plan, 112, "squash", False, per)))
    meta, parts, end = items[0], items[1:-1], items[-1]
    whole = decode_video(str(tmp_path / "in" / "film.mp4"), cfg.plan, (112, 112))
    assert end["status"] == "ok" and meta["parts"] == len(parts) >= 3
    assert max(len(p) for p in parts) == per
    np.testing.assert_array_equal(np.concatenate(parts), whole.frames)
    assert run_extract(cfg) == 0
    from hiermovie.pipeline.workers import ModelWorker

    direct = ModelWorker(cfg.backbone, "cpu", 1)(whole.frames)[0]  # the actor's model, in one go
    stored = FeatureStore(str(tmp_path / "s.zarr")).get("film")
    assert stored.tobytes() == direct.astype(np.float16).tobytes()
    record("Memory flat in a film's length", "a 90-s film, 1-s windows (90 segments)", 1,
           f"streamed in {len(parts)} parts of <= {per} segments (whole forward batches, "
           f"<= {PART_BYTES >> 20} MiB of frames); stored features bitwise equal to one pass "
           "over the whole video")


def test_a_refused_checkpoint_is_one_line_from_the_model_actor(tmp_path, capsys):
    """The model actor refuses a checkpoint that would run code; the refusal reaches the user
    as one line and exit 2 (it was a 30-line ActorDiedError after two actor restarts, exit
    1), the code never runs and no store is created."""
    from hiermovie.workflows.cli import main
    from tests.videos import make_video

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model_state": {"w": Boom()}}, f)
    make_video(tmp_path / "clips" / "a.mp4", seconds=1.0)
    rc = main(["extract", "--input", str(tmp_path / "clips"), "--store",
               str(tmp_path / "f.zarr"), "--backbone.name", "tiny3d/8", "--backbone.weights",
               str(path), "--plan.kind", "sliding", "--progress", "false", "--num_cpus", "2"])
    out, err = capsys.readouterr()
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "evil.pt: refused to load" in err and "pickled code ran" not in out + err
    assert not (tmp_path / "f.zarr").exists()
    record('Refusals in one line',
           'extract with backbone weights whose pickle runs code (refused in the model '
           'actor)',
           1,
           'exit 2, one line from the driver, no store (was a 30-line ActorDiedError, exit '
           '1)')


def test_a_folder_of_short_clips_gets_windows_over_each_whole_clip(tmp_path, capsys):
    """Issue 39's case: three short clips of a folder, under the defaults, all stored (the
    VidSitu plan had stored the one longer than 9 s only), and the choice said and kept."""
    from hiermovie.workflows.cli import main

    for name, seconds in (("a", 2.5), ("b", 4.0), ("c", 6.0)):
        make_video(tmp_path / "clips" / f"{name}.mp4", seconds=seconds, size=(48, 64))
    store = str(tmp_path / "f.zarr")
    assert main(["extract", "--input", str(tmp_path / "clips"), "--store", store,
                 "--backbone.name", "tiny3d/8", "--progress", "false"]) == 0
    out = capsys.readouterr().out
    assert "plan: windows of 2 s every 2 s over each whole video, 16 frames 4 apart" in out
    s = FeatureStore(store)
    assert sorted(s.videos()) == ["a", "b", "c"]
    assert [s.entry(v).num_segments for v in "abc"] == [1, 2, 3]
    assert s.provenance.sampling["kind"] == "sliding"
    assert s.provenance.sampling["num_frames"] == 16


def test_target_fps_sets_the_spacing_of_a_segments_frames():
    from hiermovie.pipeline.plans import PlanConfig, frames_at, sample_times

    times_30fps = np.arange(90) / 30.0
    for fps, step in ((30.0, 2), (10.0, 6)):  # sampling_rate 2 frames at fps, in 30-fps frames
        plan = PlanConfig(num_frames=4, sampling_rate=2, target_fps=fps)
        t = sample_times(plan, 0.0, 2.0)
        np.testing.assert_allclose(np.diff(t), 2 / fps)
        assert (np.diff(frames_at(times_30fps, t)) == step).all()
