import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import zarr

from hiermovie.feature_store import (
    FeatureStore,
    Provenance,
    SequenceDataset,
    StoreError,
    VideoRecord,
    complete_shards,
    pad_collate,
    shard_id_for,
)
from hiermovie.feature_store.interop import export_hdf5, import_hdf5, import_npy_folder
from tests.conftest import make_record, write_store
from tests.reliability import record


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip(tmp_path, dtype):
    url = str(tmp_path / "s.zarr")
    recs = [make_record(f"v{i}", n=i + 1, k=3, seed=i) for i in range(5)]
    recs.append(VideoRecord.failed("bad", "decode error: moov atom not found", tokens=3, dim=8))
    with FeatureStore.open(url, "a") as store:
        assert len(store) == 0  # not created yet: empty
        store.create(Provenance(backbone="b", dim=8, tokens_per_segment=3, dtype=dtype),
                     chunk_segments=4)
        store.write(recs[:3])
        assert (tmp_path / "s.zarr" / ".hiermovie-writer.json").exists()  # held while open
        store.write(recs[3:])
    assert not (tmp_path / "s.zarr" / ".hiermovie-writer.json").exists()
    with pytest.raises(StoreError, match="opened read-only"):
        FeatureStore(url).write(recs[:1])
    store = FeatureStore(url)
    assert sorted(store.videos()) == [f"v{i}" for i in range(5)]
    assert store.videos(status="failed") == ["bad"]
    assert store.entry("bad").error.startswith("decode error")
    for r in recs[:5]:
        got = store.get(r.video_id)
        assert got.shape == r.features.shape and got.dtype == np.dtype(dtype)
        if dtype == "float32":
            np.testing.assert_array_equal(got, r.features)
        else:  # within float16 rounding
            np.testing.assert_allclose(got, r.features, rtol=1e-3, atol=1e-3)
        np.testing.assert_array_equal(store.times(r.video_id)[0], r.start_s)
        np.testing.assert_array_equal(store.frame_indices(r.video_id), r.frame_indices)
    info = store.info()
    assert info["videos"] == 6 and info["videos_failed"] == 1 and info["segments"] == 15
    # same answers without the cache (direct slices)
    nocache = FeatureStore(url, cache_bytes=0)
    np.testing.assert_array_equal(nocache.get("v4"), store.get("v4"))
    assert [v for v, _ in store.iter_videos()] == store.videos()


def test_readable_with_plain_zarr(tmp_path, prov):
    url = str(tmp_path / "s.zarr")
    with FeatureStore.open(url, "a") as store:
        store.create(prov)
        sid = store.write([make_record("a", 3)])
    feats = zarr.open_group(url, mode="r")[f"shards/{sid}/features"]
    assert feats.metadata.dimension_names == ("segment", "token", "channel")
    assert feats.shape == (3, 1, 8)


def test_provenance_mismatch_refused(tmp_path, prov):
    url = str(tmp_path / "s.zarr")
    write_store(url, prov)
    write_store(url, Provenance(backbone="test", dim=8, dtype="float32"))  # same identity: ok
    with pytest.raises(StoreError, match="backbone='test'.*backbone='other'"):
        write_store(url, Provenance(backbone="other", dim=8, dtype="float32"))


def test_a_rerun_whose_settings_differ_is_refused_before_its_model_loads(tmp_path):
    """A finished store's rerun compares the settings it knows without a model, each field
    whole: a plan that no longer records the spread coverage's fields is another plan."""
    url = str(tmp_path / "s.zarr")
    spread = {"kind": "sliding", "num_frames": 8, "coverage": "spread", "clips_per_segment": 2}
    write_store(url, Provenance(backbone="b", dim=8, dtype="float16", sampling=spread))
    store = FeatureStore.open(url, "a")
    store.check_settings({"backbone": "b", "sampling": spread})  # the same: no error
    centre = {k: v for k, v in spread.items() if k in ("kind", "num_frames")}
    with pytest.raises(StoreError, match="sampling.clips_per_segment=2"):
        store.check_settings({"backbone": "b", "sampling": centre})
    with pytest.raises(StoreError, match="dtype='float16'"):
        store.check_settings({"dtype": "float32"})


def test_bad_urls(tmp_path):
    with pytest.raises(StoreError, match="not a Zarr group"):
        FeatureStore(str(tmp_path / "missing.zarr"))
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(StoreError, match="not a hiermovie feature store"):
        FeatureStore(str(tmp_path / "plain.zarr"))


def test_shape_and_nan_checks(tmp_path, prov):
    url = str(tmp_path / "s.zarr")
    bad = make_record("a", 2, d=4)
    with pytest.raises(StoreError, match="'a' has features"):
        write_store(url, prov, [bad])
    nan = make_record("n", 2)
    nan.features[0, 0, 0] = np.nan
    with pytest.raises(StoreError, match="NaN"):
        write_store(url, prov, [nan])
    assert complete_shards(url) == []
    record("Faults", "NaN in features from the backbone, at write time", 1,
           "refused naming the video (extract reports it as a fault, exit 1)")


DISJOINT_WRITER = textwrap.dedent("""
    import sys
    from hiermovie.feature_store.writer import _write_shard
    from tests.records import make_record
    url, start = sys.argv[1], int(sys.argv[2])
    for s in range(start, start + 6, 2):
        _write_shard(url, [make_record(f"v{s}", 3, seed=s), make_record(f"v{s + 1}", 2, seed=s)])
""")



def test_concurrent_writers_disjoint_shards(tmp_path, prov):
    """The shard writer below the lease needs no locks: two processes writing disjoint shards
    of one store at once (the lease keeps jobs apart; this is the layer it guards)."""
    url = write_store(tmp_path / "s.zarr", prov)
    procs = [subprocess.Popen([sys.executable, "-c", DISJOINT_WRITER, url, str(s)],
                              cwd=os.path.dirname(os.path.dirname(__file__))) for s in (0, 100)]
    for p in procs:
        assert p.wait(60) == 0
    store = FeatureStore(url)
    assert len(store) == 12
    for s in (0, 2, 4, 100, 102, 104):
        np.testing.assert_array_equal(store.get(f"v{s}"), make_record(f"v{s}", 3, seed=s).features)


KILLED_WRITER = textwrap.dedent("""
    import sys, time, zarr
    from tests.records import make_record
    from hiermovie.feature_store import FeatureStore
    real = zarr.Array.__setitem__
    def slow(self, key, value):
        real(self, key, value)
        print("wrote", flush=True)
        time.sleep(60)  # killed here, after the first array of the shard is written
    zarr.Array.__setitem__ = slow
    store = FeatureStore.open(sys.argv[1], "a")
    store.create(FeatureStore(sys.argv[1]).provenance)
    store.write([make_record("x", 4), make_record("y", 2)])
""")


def test_killed_writer_leaves_no_visible_shard(tmp_path, prov):
    url = write_store(tmp_path / "s.zarr", prov, [make_record("done", 2)])
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, url], stdout=subprocess.PIPE,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.stdout.readline().strip() == b"wrote"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    sid = shard_id_for(["x", "y"])
    assert (tmp_path / "s.zarr" / "shards" / sid).exists()  # partial data is on disk ...
    store = FeatureStore(url)
    assert store.videos() == ["done"]  # ... but invisible
    assert sid not in complete_shards(url)
    write_store(url, prov, [make_record("x", 4), make_record("y", 2)])  # the rerun completes it
    store = FeatureStore(url)
    assert sorted(store.videos()) == ["done", "x", "y"]
    np.testing.assert_array_equal(store.get("x"), make_record("x", 4).features)
    record("Faults", "shard writer SIGKILLed after writing data, before its commit", 1,
           "partial shard on disk but invisible to readers; rewriting it completed the store")


def test_dataset_windows_and_collate(tmp_path, prov):
    url = str(tmp_path / "s.zarr")
    write_store(url, prov, [make_record("long", 10), make_record("short", 3)])
    store = FeatureStore(url)
    whole = SequenceDataset(store)
    assert [it[0] for it in whole.items] == ["long", "short"]
    batch = pad_collate([whole[0], whole[1]])
    assert batch["features"].shape == (2, 10, 1, 8) and batch["features"].dtype == torch.float32
    assert batch["mask"].sum(1).tolist() == [10, 3]
    assert torch.all(batch["features"][1, 3:] == 0)
    torch.testing.assert_close(batch["features"][0], torch.from_numpy(store.get("long")))
    win = SequenceDataset(store, window=4, stride=3)
    assert [(v, lo, hi) for v, lo, hi in win.items] == [
        ("long", 0, 4), ("long", 3, 7), ("long", 6, 10), ("short", 0, 3)]
    item = win[1]
    torch.testing.assert_close(item["features"], torch.from_numpy(store.get("long")[3:7]))
    assert item["start_s"].tolist() == [6.0, 8.0, 10.0, 12.0]


def test_import_npy_and_hdf5_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    feats = {f"v_abc{i}_seg_{i * 10}_{i * 10 + 10}": rng.standard_normal((5, 16)).astype(np.float32)
             for i in range(3)}
    folder = tmp_path / "npy"
    folder.mkdir()
    for k, v in feats.items():
        np.save(folder / f"{k}_feats.npy", v)
    url = str(tmp_path / "npy.zarr")
    assert import_npy_folder(folder, url, dtype="float32") == 3
    store = FeatureStore(url)
    for k, v in feats.items():
        np.testing.assert_array_equal(store.get(k)[:, 0], v)
    assert store.times(next(iter(feats)))[0].tolist() == [0, 2, 4, 6, 8]
    h5 = tmp_path / "out.h5"
    assert export_hdf5(store, h5) == 3
    url2 = str(tmp_path / "h5.zarr")
    assert import_hdf5(h5, url2, dtype="float32") == 3
    back = FeatureStore(url2)
    for k in feats:
        np.testing.assert_array_equal(back.get(k), store.get(k))
        np.testing.assert_array_equal(back.times(k)[0], store.times(k)[0])


@pytest.mark.parametrize("to", ["out.h5", "npy_dir"])
def test_store_export_import_round_trips_exactly(tmp_path, to, capsys):
    from hiermovie.workflows.cli import main

    url = str(tmp_path / "s.zarr")
    prov = Provenance(backbone="tiny3d/8", dim=8, tokens_per_segment=2, dtype="float16",
                      sampling={"kind": "sliding"})
    recs = [make_record(f"clip {i}/ü", 2 + i, k=2, seed=i) for i in range(3)]
    recs[1].start_s = recs[1].start_s + 0.25  # times that no default could guess
    write_store(url, prov, recs[:2], recs[2:])
    out = str(tmp_path / to)
    assert main(["store", "export", url, "--to", out]) == 0
    back = str(tmp_path / "back.zarr")
    assert main(["store", "import", out, back]) == 0
    a, b = FeatureStore(url), FeatureStore(back)
    assert b.provenance == a.provenance  # created and package_version too
    assert sorted(b.videos()) == sorted(a.videos())
    for vid in a.videos():
        assert b.get(vid).tobytes() == a.get(vid).tobytes() and b.get(vid).dtype == np.float16
        for x, y in zip(a.times(vid), b.times(vid), strict=True):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(a.frame_indices(vid), b.frame_indices(vid))
        assert a.entry(vid).duration_s == b.entry(vid).duration_s
    record("Interop", f"`store export` to {'HDF5' if to.endswith('.h5') else 'npy files'}, "
           "then `store import`", 1, "features (bytes), times, frame indices and provenance "
           "equal to the original store's")


def test_float32_npy_keeps_its_dtype(tmp_path):
    folder = tmp_path / "npy"
    folder.mkdir()
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    np.save(folder / "a_feats.npy", x)
    import_npy_folder(folder, str(tmp_path / "s.zarr"))
    s = FeatureStore(str(tmp_path / "s.zarr"))
    assert s.provenance.dtype == "float32"
    np.testing.assert_array_equal(s.get("a")[:, 0], x)


def test_open_xarray_equals_the_store(tmp_path, prov):
    from hiermovie.feature_store import open_xarray

    url = str(tmp_path / "s.zarr")
    recs = [make_record("a", 3), make_record("b", 5, seed=1), make_record("c", 1, seed=2)]
    write_store(url, prov, recs[:2], recs[2:], [VideoRecord.failed("bad", "x.mp4: broken", 1, 8)])
    ds = open_xarray(url)
    store = FeatureStore(url)
    assert list(ds.video_id.values) == store.videos()
    assert sorted(store.videos()) == ["a", "b", "c"]
    assert dict(ds.features.sizes) == {"video": 3, "segment": 5, "token": 1, "feature": 8}
    for i, vid in enumerate(store.videos()):
        n = store.entry(vid).num_segments
        assert int(ds.num_segments[i]) == n
        np.testing.assert_array_equal(ds.features.values[i, :n], store.get(vid))
        assert np.isnan(ds.features.values[i, n:]).all()
        np.testing.assert_array_equal(ds.start_s.values[i, :n], store.times(vid)[0])
        np.testing.assert_array_equal(ds.frame_indices.values[i, :n], store.frame_indices(vid))
    sel = ds.features.sel(video=ds.video_id == "b")
    assert sel.shape == (1, 5, 1, 8)
