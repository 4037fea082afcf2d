"""Creating stores and writing shards (the steps under `FeatureStore`'s writable side).

Each shard is written by exactly one writer, into a group of its own, and is committed last by
one write of the group's metadata document (`zarr.json`) that holds both `complete: true` and
the shard's index. That one write is atomic: a temporary file renamed over the old one on local
disks (zarr's LocalStore), a single PUT on object stores. Writers need no locks; readers never
see a shard before it is committed, and treat a shard whose commit record is inconsistent (left
by an older version's multi-write commit) as not committed, so a rerun rewrites it.
"""

from __future__ import annotations

from typing import Any, Literal

import fsspec
import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from hiermovie.feature_store.schema import (
    COMPLETE,
    FORMAT_VERSION,
    LEASE,
    ROOT_KEY,
    SEGMENT_ARRAYS,
    SHARDS,
    VIDEO_ARRAYS,
    VIDEO_STRINGS,
    Provenance,
    VideoRecord,
    is_committed,
    shard_id_for,
    unstorable,
)

Compressor = Literal["none", "zstd", "blosc-zstd"]


class StoreError(ValueError):
    """A store that cannot be used as asked; the message names the store and the reason."""


def _compressors(name: str) -> Any:
    return {
        "none": None,
        "zstd": ZstdCodec(level=3),
        "blosc-zstd": BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
    }[name]


def filesystem(url: str, storage_options: dict | None = None) -> tuple[Any, str]:
    """The fsspec filesystem and path of a store's URL (a local path is a URL too)."""
    return fsspec.core.url_to_fs(url, **(storage_options or {}))


class NewerFormat(StoreError):
    """A store written by a newer hiermovie: read or written by this one, never."""


def open_group(url: str, mode: str = "r", storage_options: dict | None = None) -> zarr.Group:
    """Open a Zarr group by local path or fsspec URL, with a clear error when it is no store."""
    try:
        return zarr.open_group(url, mode=mode, storage_options=storage_options)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError,
            zarr.errors.NodeTypeValidationError) as e:
        raise StoreError(f"{url}: not a Zarr group ({type(e).__name__})") from None


def read_root_attrs(url: str, storage_options: dict | None = None) -> dict[str, Any]:
    meta = open_group(url, "r", storage_options).attrs.asdict().get(ROOT_KEY)
    if meta is None:
        raise StoreError(f"{url}: a Zarr group but not a hiermovie feature store")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise NewerFormat(f"{url}: format version {meta['format_version']} is newer than this "
                         f"hiermovie understands ({FORMAT_VERSION}); upgrade hiermovie")
    return meta


def _create_store(
    url: str,
    provenance: Provenance,
    *,
    chunk_segments: int = 4096,
    compressor: Compressor = "none",
    storage_options: dict | None = None,
) -> None:
    """Create a store, or check that an existing one holds features of the same provenance."""
    if chunk_segments < 1:
        raise StoreError(f"{url}: chunk_segments must be >= 1")
    _compressors(compressor)  # KeyError early for a bad name
    try:
        existing = read_root_attrs(url, storage_options)
    except NewerFormat:
        raise
    except StoreError:
        existing = None
    if existing is not None:
        refuse_other_features(url, existing["provenance"], provenance.identity())
        _remove_partials(url, storage_options)
        return
    refuse_foreign(url, storage_options)
    meta = {ROOT_KEY: {
        "format_version": FORMAT_VERSION,
        "provenance": provenance.to_dict(),
        "storage": {"chunk_segments": chunk_segments, "compressor": compressor},
    }}
    # the root's metadata is written whole, in one write: a killed creation leaves no store, or
    # a store (perhaps still without its shards/ group, which readers take as empty)
    root = zarr.open_group(url, mode="a", storage_options=storage_options, attributes=meta)
    if ROOT_KEY not in root.attrs:  # another writer's group appeared meanwhile: never adopted
        raise StoreError(f"{url}: exists and is not a hiermovie store; refusing to write into it")
    root.require_group(SHARDS)
    _remove_partials(url, storage_options)


def _remove_partials(url: str, storage_options: dict | None) -> None:
    """Delete the temporary files (zarr.<uuid>.partial) that zarr's LocalStore leaves in the
    root and shards/ folders when a writer is killed while it re-checks their metadata (zarr
    does so for every array it creates). Only writers starting a job call this, under the
    store's lease; inside shard folders a rewrite of the uncommitted shard removes them."""
    fs, path = filesystem(url, storage_options)
    for folder in (path, f"{path.rstrip('/')}/{SHARDS}"):
        if "file" not in fs.protocol or not fs.isdir(folder):
            continue
        for p in fs.ls(folder, detail=False):
            name = p.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("zarr.") and name.endswith(".partial"):
                fs.rm_file(p)


def refuse_foreign(url: str, storage_options: dict | None) -> None:
    """A new store goes into a new or empty location, never over a file or someone's folder."""
    fs, path = filesystem(url, storage_options)
    if not fs.exists(path):
        return
    if fs.isfile(path):
        raise StoreError(f"{url}: is a file, not a feature store")
    ours = {"zarr.json", SHARDS, LEASE}
    names = {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)}
    # a store is created with its root metadata, marker included, in one write, before its
    # shards/: a zarr.json without the marker, or shards/ without a zarr.json, is another's
    if "zarr.json" in names and ROOT_KEY not in open_group(url, "r", storage_options).attrs:
        raise StoreError(f"{url}: holds a Zarr group that is not a hiermovie feature store "
                         f"(its zarr.json has no {ROOT_KEY!r} attribute); refusing to "
                         "write into it")
    if SHARDS in names and "zarr.json" not in names:
        raise StoreError(f"{url}: holds a {SHARDS!r} folder but no feature store metadata "
                         "(zarr.json); refusing to write into it")
    other = sorted(names)
    # zarr's temporary files (*.partial) are left by a writer killed while creating the store
    other = [name for name in other if name not in ours and not name.endswith(".partial")]
    if other:
        raise StoreError(f"{url}: exists and is not a feature store (holds {other[0]!r}"
                         f"{' and more' if len(other) > 1 else ''}); refusing to write into it")


def refuse_other_features(url: str, stored: dict[str, Any], new: dict[str, Any], *,
                          partial: bool = False) -> None:
    """Refuse to add features to a store that holds features of another meaning: `new` is a
    provenance's identity, or with `partial` some of its top-level fields (what a rerun can
    check before its model is loaded), each compared whole."""
    fields = set(new)
    old, new = _flat(Provenance.from_dict(stored).identity()), _flat(new)
    keys = {k for k in old.keys() | new.keys() if not partial or k.split(".")[0] in fields}
    diff = [k for k in sorted(keys) if old.get(k) != new.get(k)]
    if diff:
        k = diff[0]
        raise StoreError(
            f"{url}: store holds features with {k}={old.get(k)!r}, this run has "
            f"{k}={new.get(k)!r} (differing: {', '.join(diff)}); write to a new store")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _concat(records: list[VideoRecord], attr: str, empty_shape: tuple, dtype: str) -> np.ndarray:
    parts = [np.asarray(getattr(r, attr)) for r in records]
    parts = [p for p in parts if p.shape[0]]
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(empty_shape, dtype)


def _check(url: str, record: VideoRecord, prov: Provenance) -> None:
    f = record.features
    want = (prov.tokens_per_segment, prov.dim)
    if f.ndim != 3 or tuple(f.shape[1:]) != want:
        raise StoreError(f"{url}: video {record.video_id!r} has features {f.shape}, store wants "
                         f"[segments, {want[0]}, {want[1]}]")
    n = f.shape[0]
    for name in ("start_s", "end_s", "frame_indices"):
        if len(getattr(record, name)) != n:
            raise StoreError(f"{url}: video {record.video_id!r}: {name} has "
                             f"{len(getattr(record, name))} rows for {n} segments")
    if record.status == "ok" and (problem := unstorable(f, prov.dtype)):
        raise StoreError(f"{url}: features of video {record.video_id!r} {problem}")


def _columns(records: list[VideoRecord], prov: Provenance
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The shard's arrays (segment- and video-indexed) and its per-video strings."""
    k, d = prov.tokens_per_segment, prov.dim
    frames = max((r.frame_indices.shape[1] for r in records if r.num_segments), default=0)
    counts = np.array([r.num_segments for r in records], np.int64)
    columns: dict[str, np.ndarray] = {
        "features": _concat(records, "features", (0, k, d), prov.dtype),
        "segment_video": np.repeat(np.arange(len(records), dtype=np.int32), counts),
        "segment_index": np.concatenate([np.arange(c, dtype=np.int32) for c in counts]),
        "start_s": _concat(records, "start_s", (0,), "float64"),
        "end_s": _concat(records, "end_s", (0,), "float64"),
        "frame_indices": _concat(records, "frame_indices", (0, frames), "int64"),
        "first_segment": np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64),
        "num_segments": counts,
        "duration_s": np.array([r.duration_s for r in records], np.float64),
        "fps": np.array([r.fps for r in records], np.float64),
        "num_frames": np.array([r.num_frames for r in records], np.int64),
    }
    strings = {name: np.array([getattr(r, name) for r in records], dtype=object)
               for name in VIDEO_STRINGS}
    assert set(columns) == {"features", "frame_indices"} | set(SEGMENT_ARRAYS) | set(VIDEO_ARRAYS)
    return columns, strings


def _write_shard(
    url: str, records: list[VideoRecord], *, storage_options: dict | None = None
) -> str:
    """Write one shard holding `records` and commit it; returns the shard id.

    An incomplete shard of the same id (left by a killed writer) is replaced.
    """
    meta = read_root_attrs(url, storage_options)
    prov = Provenance.from_dict(meta["provenance"])
    storage = meta["storage"]
    if not records:
        raise StoreError(f"{url}: a shard needs at least one video")
    ids = [r.video_id for r in records]
    if len(set(ids)) != len(ids):
        raise StoreError(f"{url}: duplicate video ids in one shard")
    for r in records:
        _check(url, r, prov)
    shard_id = shard_id_for(ids)
    columns, strings = _columns(records, prov)
    counts = columns["num_segments"]
    shards = open_group(url, "a", storage_options).require_group(SHARDS)
    if shard_id in shards:
        # uncommit before deleting: a kill inside the deletion must not leave a committed
        # record over missing arrays
        _uncommit_shard(url, shard_id, storage_options)
    group = shards.create_group(shard_id, overwrite=True, attributes={COMPLETE: False})
    rows = max(1, min(int(storage["chunk_segments"]), int(counts.sum())))
    compressors = _compressors(storage["compressor"])
    for name, data in columns.items():
        dims = {"features": ("segment", "token", "channel"),
                "frame_indices": ("segment", "frame")}.get(name)
        if dims is None:
            dims = ("segment",) if name in SEGMENT_ARRAYS else ("video",)
        chunks = (rows, *data.shape[1:]) if dims[0] == "segment" else (max(1, len(data)),)
        chunks = tuple(max(1, c) for c in chunks)
        arr = group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=chunks,
                                 dimension_names=dims, compressors=compressors)
        arr[...] = data
    for name, data in strings.items():
        arr = group.create_array(name, shape=data.shape, dtype=str, chunks=(len(data),),
                                 dimension_names=("video",))
        arr[...] = data
    # the commit record: also the shard's entry in the store index, so that opening a store
    # reads one small document per shard
    index = {k: [None if isinstance(x, float) and not np.isfinite(x) else x
                 for x in columns[k].tolist()] for k in VIDEO_ARRAYS}
    index.update({k: v.tolist() for k, v in strings.items()})
    # one metadata write (Attributes.update would write zarr.json once per key, `complete`
    # first, so a kill between the writes left a "complete" shard without its index)
    group.update_attributes({COMPLETE: True, "videos": len(records),
                             "segments": int(counts.sum()), "index": index})
    return shard_id


def _uncommit_shard(url: str, shard_id: str, storage_options: dict | None = None) -> None:
    """Mark a shard incomplete (one atomic write): readers stop seeing it, a rerun redoes it."""
    open_group(url, "a", storage_options)[SHARDS][shard_id].attrs.put({COMPLETE: False})


def complete_shards(url: str, storage_options: dict | None = None) -> list[str]:
    """Ids of the committed shards, sorted."""
    root = open_group(url, "r", storage_options)
    if SHARDS not in root:
        return []
    return sorted(name for name, g in root[SHARDS].groups() if is_committed(g.attrs))
