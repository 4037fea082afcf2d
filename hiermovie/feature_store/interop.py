"""Moving features between a store and the formats people already have (npy folders, HDF5,
xarray). Exports carry the store's provenance and segment times, and imports restore them, so
`store export` -> `store import` gives back the same features, times and provenance."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import h5py
import numpy as np

from hiermovie.feature_store.reader import FeatureStore
from hiermovie.feature_store.schema import Provenance, VideoRecord, shard_id_for, unstorable
from hiermovie.feature_store.writer import StoreError

NPY_SUFFIX = "_feats.npy"
VIDSITU_EVENT_S = 2.0  # VidSitu: 5 events of 2 s in a 10 s clip


def _as_record(video_id: str, feats: np.ndarray, segment_s: float, source: str) -> VideoRecord:
    if feats.ndim == 2:
        feats = feats[:, None, :]
    if feats.ndim != 3:
        raise StoreError(f"{video_id}: features must be [S, D] or [S, K, D], got {feats.shape}")
    n = feats.shape[0]
    start = np.arange(n) * segment_s
    return VideoRecord(video_id=video_id, features=feats, start_s=start, end_s=start + segment_s,
                       frame_indices=np.full((n, 0), -1, np.int64), duration_s=n * segment_s)


def _load_npy(path: Path) -> np.ndarray:
    """An .npy file's array, never running pickled code: an object array (which only a pickle
    can hold) or a file that is not .npy is one line naming it."""
    try:
        feats = np.load(path, allow_pickle=False)
    except ValueError as e:  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
        raise StoreError(f"{path}: refused: {str(e).splitlines()[0]} (features must be a "
                         "numeric array; pickled objects are never loaded)") from None
    except (OSError, EOFError) as e:
        raise StoreError(f"{path}: not a readable .npy file ({e})") from None
    if not np.issubdtype(feats.dtype, np.number):
        raise StoreError(f"{path}: features must be numbers, got dtype {feats.dtype}")
    return feats


def _dtype(records: list[VideoRecord], dtype: str | None) -> str:
    """The stored dtype: as asked, else the input's (float16 stays float16, anything else is
    stored as float32), never silently narrowed."""
    if dtype:
        return dtype
    kinds = {r.features.dtype for r in records}
    return "float16" if kinds == {np.dtype("float16")} else "float32"


def _write(records: list[VideoRecord], sources: list[str], url: str, backbone: str,
           dtype: str | None, videos_per_shard: int, segment_s: float,
           provenance: dict | None = None) -> int:
    if not records:
        raise StoreError(f"no features found to import into {url}")
    k, d = records[0].features.shape[1:]
    if provenance:  # exported by hiermovie: the features keep their own provenance
        prov = Provenance.from_dict({**provenance, **({"dtype": dtype} if dtype else {})})
    else:
        prov = Provenance(backbone=backbone, dim=int(d), tokens_per_segment=int(k),
                          dtype=_dtype(records, dtype),
                          sampling={"imported": True, "segment_s": segment_s})
    for r, source in zip(records, sources, strict=True):  # as stored, before any write
        if problem := unstorable(r.features, prov.dtype):
            raise StoreError(f"{source}: features of {r.video_id!r} {problem}; nothing imported")
    records.sort(key=lambda r: r.video_id)
    with FeatureStore.open(url, "a") as store:  # under the lease, as extract writes
        store.create(prov)
        done = set(store.shard_names)
        for i in range(0, len(records), videos_per_shard):
            part = records[i:i + videos_per_shard]
            if shard_id_for([r.video_id for r in part]) not in done:
                store.write(part)
    return len(records)


INDEX = "hiermovie-index.json"  # beside exported .npy files: provenance and segment times


def import_npy_folder(folder: str | Path, url: str, *, backbone: str = "imported-npy",
                      dtype: str | None = None, videos_per_shard: int = 256,
                      segment_s: float = VIDSITU_EVENT_S) -> int:
    """Import `{clip_id}_feats.npy` files ([S, D] or [S, K, D]; VidSitu's are (5, D));
    returns the count. A folder written by `export_npy_folder` keeps its provenance and times."""
    folder = Path(folder)
    index = json.loads((folder / INDEX).read_text()) if (folder / INDEX).exists() else {}
    records, sources = [], []
    for f in sorted(folder.glob(f"*{NPY_SUFFIX}")):
        vid = unquote(f.name[: -len(NPY_SUFFIX)])
        rec = _as_record(vid, _load_npy(f), segment_s, str(f))
        _restore(rec, index.get("videos", {}).get(vid))
        records.append(rec)
        sources.append(str(f))
    return _write(records, sources, url, backbone, dtype, videos_per_shard, segment_s,
                  index.get("provenance"))


def import_hdf5(path: str | Path, url: str, *, backbone: str = "imported-hdf5",
                dtype: str | None = None, videos_per_shard: int = 256,
                segment_s: float = 1.0) -> int:
    """Import an HDF5 file with one dataset per video ([S, D] or [S, K, D]), at any depth;
    a file written by `export_hdf5` keeps its provenance and times."""
    records: list[VideoRecord] = []
    sources: list[str] = []
    with h5py.File(path, "r") as f:
        provenance = json.loads(f.attrs["provenance"]) if "provenance" in f.attrs else None

        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                vid = unquote(name.rsplit("/", 1)[-1])
                rec = _as_record(vid, obj[()], segment_s, f"{path}:{name}")
                _restore(rec, {k: obj.attrs[k] for k in obj.attrs})
                records.append(rec)
                sources.append(f"{path}:{name}")
        f.visititems(visit)
    return _write(records, sources, url, backbone, dtype, videos_per_shard, segment_s,
                  provenance)


def _video_meta(store: FeatureStore, vid: str) -> dict[str, Any]:
    e = store.entry(vid)
    start, end = store.times(vid)
    return {"start_s": start.tolist(), "end_s": end.tolist(),
            "frame_indices": store.frame_indices(vid).tolist(), "duration_s": e.duration_s,
            "fps": e.fps, "num_frames": e.num_frames}


def _restore(rec: VideoRecord, meta: dict[str, Any] | None) -> None:
    if not meta:
        return
    if "start_s" in meta:
        rec.start_s = np.asarray(meta["start_s"], np.float64)
        rec.end_s = np.asarray(meta["end_s"], np.float64)
    if "frame_indices" in meta:
        rec.frame_indices = np.asarray(meta["frame_indices"], np.int64).reshape(
            rec.num_segments, -1)
    for k in ("duration_s", "fps", "num_frames"):
        if k in meta:
            setattr(rec, k, type(getattr(rec, k))(meta[k]))


def export_hdf5(store: FeatureStore, path: str | Path) -> int:
    """Write `/features/<quoted video id>` = [S, K, D] with the segment times as attributes
    and the provenance as JSON on the file."""
    n = 0
    with h5py.File(path, "w") as f:
        f.attrs["provenance"] = json.dumps(store.provenance.to_dict())
        grp = f.create_group("features")
        for vid, feats in store.iter_videos():
            ds = grp.create_dataset(quote(vid, safe=""), data=feats)
            for k, v in _video_meta(store, vid).items():
                ds.attrs[k] = v
            n += 1
    return n


def export_npy_folder(store: FeatureStore, folder: str | Path) -> int:
    """Write `<quoted id>_feats.npy` = [S, K, D] per video ([S, D] for one token per segment,
    as VidSitu's loader reads them), and hiermovie-index.json with the provenance and each
    video's segment times."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # every file name checked before the first is written: no partial export
    limit = os.pathconf(folder, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    names = {vid: f"{quote(vid, safe='')}{NPY_SUFFIX}" for vid in store.videos()}
    for vid, name in names.items():
        if len(name.encode()) > limit:
            raise StoreError(f"{folder}: video id {vid[:60]!r}... makes a file name of "
                             f"{len(name.encode())} bytes, over this file system's {limit}; "
                             "export to HDF5 (--to out.h5) instead, which keeps any id")
    videos = {}
    for vid, feats in store.iter_videos():  # one token: [S, D], VidSitu's (5, 2304) files
        np.save(folder / names[vid], feats[:, 0] if feats.shape[1] == 1 else feats)
        videos[vid] = _video_meta(store, vid)
    (folder / INDEX).write_text(json.dumps({"provenance": store.provenance.to_dict(),
                                            "videos": videos}))
    return len(videos)


def open_xarray(url: str, storage_options: dict | None = None) -> Any:
    """The store's ok videos as one xarray Dataset: `features` [video, segment, token,
    feature] (NaN past a video's last segment), with coordinates video_id, start_s, end_s,
    frame_indices and num_segments, and the provenance in its attributes."""
    import xarray as xr

    store = FeatureStore(url, storage_options=storage_options)
    prov = store.provenance
    ids = store.videos()
    counts = [store.entry(v).num_segments for v in ids]
    s_max = max(counts, default=0)
    frames = max((store.frame_indices(v).shape[1] for v in ids if store.entry(v).num_segments),
                 default=0)
    feats = np.full((len(ids), s_max, prov.tokens_per_segment, prov.dim), np.nan, prov.dtype)
    start = np.full((len(ids), s_max), np.nan)
    end = np.full((len(ids), s_max), np.nan)
    index = np.full((len(ids), s_max, frames), -1, np.int64)
    for i, (vid, f) in enumerate(store.iter_videos()):
        row = ids.index(vid) if ids[i] != vid else i
        n = f.shape[0]
        feats[row, :n] = f
        start[row, :n], end[row, :n] = store.times(vid)
        fi = store.frame_indices(vid)
        index[row, :n, :fi.shape[1]] = fi
    return xr.Dataset(
        {"features": (("video", "segment", "token", "feature"), feats)},
        coords={"video_id": ("video", ids), "num_segments": ("video", np.array(counts)),
                "start_s": (("video", "segment"), start), "end_s": (("video", "segment"), end),
                "frame_indices": (("video", "segment", "frame"), index)},
        attrs={"provenance": json.dumps(prov.to_dict()), "store": url})
