"""Moving features between a store and the formats people already have (npy folders, HDF5)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote

import h5py
import numpy as np

from hiermovie.feature_store.reader import FeatureStore
from hiermovie.feature_store.schema import Provenance, VideoRecord, shard_id_for
from hiermovie.feature_store.writer import complete_shards, create_store, write_shard

NPY_SUFFIX = "_feats.npy"
VIDSITU_EVENT_S = 2.0  # VidSitu: 5 events of 2 s in a 10 s clip


def _as_record(video_id: str, feats: np.ndarray, segment_s: float, source: str) -> VideoRecord:
    if not np.isfinite(feats).all():  # checked before anything is written
        raise ValueError(f"{source}: features of {video_id!r} contain NaN/Inf; nothing imported")
    if feats.ndim == 2:
        feats = feats[:, None, :]
    if feats.ndim != 3:
        raise ValueError(f"{video_id}: features must be [S, D] or [S, K, D], got {feats.shape}")
    n = feats.shape[0]
    start = np.arange(n) * segment_s
    return VideoRecord(video_id=video_id, features=feats, start_s=start, end_s=start + segment_s,
                       frame_indices=np.full((n, 0), -1, np.int64), duration_s=n * segment_s)


def _write(records: list[VideoRecord], url: str, backbone: str, dtype: str,
           videos_per_shard: int, segment_s: float) -> int:
    if not records:
        raise ValueError(f"no features found to import into {url}")
    k, d = records[0].features.shape[1:]
    prov = Provenance(backbone=backbone, dim=int(d), tokens_per_segment=int(k), dtype=dtype,
                      sampling={"imported": True, "segment_s": segment_s})
    create_store(url, prov)
    records.sort(key=lambda r: r.video_id)
    done = set(complete_shards(url))
    for i in range(0, len(records), videos_per_shard):
        part = records[i:i + videos_per_shard]
        if shard_id_for([r.video_id for r in part]) not in done:
            write_shard(url, part)
    return len(records)


def import_npy_folder(folder: str | Path, url: str, *, backbone: str = "imported-npy",
                      dtype: str = "float16", videos_per_shard: int = 256,
                      segment_s: float = VIDSITU_EVENT_S) -> int:
    """Import VidSitu-style `{clip_id}_feats.npy` files of shape (5, D); returns the count."""
    files = sorted(Path(folder).glob(f"*{NPY_SUFFIX}"))
    records = [_as_record(f.name[: -len(NPY_SUFFIX)], np.load(f, allow_pickle=False), segment_s,
                          str(f)) for f in files]
    return _write(records, url, backbone, dtype, videos_per_shard, segment_s)


def import_hdf5(path: str | Path, url: str, *, backbone: str = "imported-hdf5",
                dtype: str = "float16", videos_per_shard: int = 256,
                segment_s: float = 1.0) -> int:
    """Import an HDF5 file with one dataset per video ([S, D] or [S, K, D]), at any depth."""
    records: list[VideoRecord] = []
    with h5py.File(path, "r") as f:
        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                vid = unquote(name.rsplit("/", 1)[-1])
                rec = _as_record(vid, obj[()], segment_s, f"{path}:{name}")
                if "start_s" in obj.attrs:
                    rec.start_s = np.asarray(obj.attrs["start_s"], np.float64)
                    rec.end_s = np.asarray(obj.attrs["end_s"], np.float64)
                records.append(rec)
        f.visititems(visit)
    return _write(records, url, backbone, dtype, videos_per_shard, segment_s)


def export_hdf5(store: FeatureStore, path: str | Path) -> int:
    """Write `/features/<quoted video id>` = [S, K, D] with start_s/end_s attributes."""
    n = 0
    with h5py.File(path, "w") as f:
        f.attrs["provenance"] = str(store.provenance.to_dict())
        grp = f.create_group("features")
        for vid, feats in store.iter_videos():
            ds = grp.create_dataset(quote(vid, safe=""), data=feats)
            ds.attrs["start_s"], ds.attrs["end_s"] = store.times(vid)
            n += 1
    return n
