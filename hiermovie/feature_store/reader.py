"""The feature store: one object opened with a mode, as zarr's stores are. Mode "r" reads:
the video index, one video's [S, K, D] features, storage order. Mode "a" adds the writing
job's steps and the lease (`store_writer.WritableSide`)."""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import zarr

from hiermovie.feature_store.schema import (
    COMPLETE,
    SHARDS,
    Provenance,
    is_committed,
    unstorable,
)
from hiermovie.feature_store.store_writer import WritableSide
from hiermovie.feature_store.writer import StoreError, read_root_attrs


def _committed_shards(url: str, storage_options: dict | None) -> list[tuple[str, Any]]:
    """(name, group) of every committed shard in name order (zarr fetches the members'
    metadata concurrently)."""
    root = zarr.open_group(url, mode="r", storage_options=storage_options)
    if SHARDS not in root:
        return []
    found = root[SHARDS].members(max_depth=0)
    for name, g in found:
        # a torn commit record (older versions could leave one without its index) is
        # incomplete, rewritten by the next writer; a whole index that does not add up was
        # altered after the commit
        index = g.attrs.get("index")
        whole = isinstance(index, dict) and all(isinstance(v, list) for v in index.values())
        if g.attrs.get(COMPLETE) is True and whole and not is_committed(g.attrs):
            raise StoreError(f"{url}: shard {name} is marked complete but its index does not "
                             "add up (the shard was altered); refusing to read the store")
    return sorted((n, g) for n, g in found if is_committed(g.attrs))


@dataclass(frozen=True)
class VideoEntry:
    """Where a video lives and what is known about it."""

    video_id: str
    shard: int
    first_segment: int
    num_segments: int
    duration_s: float
    fps: float
    num_frames: int
    status: str
    error: str


class FeatureStore(WritableSide):
    """A store's committed shards; with mode "a", also the writing side (a store not yet
    created reads as empty until `create`). A context manager: leaving it releases the lease.

    `cache_bytes` bounds an LRU cache of whole decoded feature arrays per shard: reads then cost
    one chunk fetch per shard instead of one per video, and memory stays bounded however large
    the store is.
    """

    def __init__(self, url: str, mode: Literal["r", "a"] = "r", *,
                 storage_options: dict | None = None, cache_bytes: int = 2 << 30) -> None:
        if mode not in ("r", "a"):
            raise ValueError(f"{url}: mode must be 'r' or 'a', not {mode!r}")
        self.url, self.mode, self.cache_bytes = url, mode, cache_bytes
        self.so = storage_options or None
        self.provenance: Provenance | None = None
        self.storage: dict[str, Any] = {}
        self._clear()
        if mode == "a":
            self._open_writable()
        else:
            self.reload()

    @classmethod
    def open(cls, url: str, mode: Literal["r", "a"] = "r", *,
             storage_options: dict | None = None, cache_bytes: int = 2 << 30) -> FeatureStore:
        return cls(url, mode, storage_options=storage_options, cache_bytes=cache_bytes)

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _clear(self) -> None:
        self._shards: list[_Shard] = []
        self._shard_names: list[str] = []
        self._index: dict[str, VideoEntry] = {}
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached = 0
        self._times: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def reload(self) -> None:
        """Read the store's metadata and index again (what writers committed since)."""
        meta = read_root_attrs(self.url, self.so)
        self._clear()
        self.provenance = Provenance.from_dict(meta["provenance"])
        self.storage = meta["storage"]
        for name, group in _committed_shards(self.url, self.so):
            self._add_shard(name, group)

    def _add_shard(self, name: str, group: Any) -> None:
        cols = group.attrs["index"]
        shard = len(self._shards)
        lengths = {k: len(v) for k, v in cols.items()}
        if len(set(lengths.values())) > 1:
            raise StoreError(f"{self.url}: shard {name}: its index columns disagree on the "
                             f"number of videos ({lengths}); the shard was altered")
        self._shards.append(_Shard(group, sum(cols["num_segments"]), name, self))
        self._shard_names.append(name)
        for i, vid in enumerate(cols["video_id"]):
            vid = str(vid)
            if vid in self._index:
                raise StoreError(f"{self.url}: video {vid!r} is in two shards "
                                 f"({self._shard_names[self._index[vid].shard]} and {name})")
            self._index[vid] = VideoEntry(
                video_id=vid, shard=shard,
                first_segment=int(cols["first_segment"][i]),
                num_segments=int(cols["num_segments"][i]),
                duration_s=_float(cols["duration_s"][i]), fps=_float(cols["fps"][i]),
                num_frames=int(cols["num_frames"][i]),
                status=str(cols["status"][i]), error=str(cols["error"][i]))

    # --- index -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, video_id: str) -> bool:
        return video_id in self._index

    def videos(self, status: str | None = "ok") -> list[str]:
        """Video ids in storage order; `status=None` lists failed videos too."""
        return [v for v, e in self._index.items() if status is None or e.status == status]

    def entry(self, video_id: str) -> VideoEntry:
        try:
            return self._index[video_id]
        except KeyError:
            raise KeyError(f"{self.url}: no video {video_id!r} in the store") from None

    @property
    def shard_names(self) -> list[str]:
        return list(self._shard_names)

    # --- data ------------------------------------------------------------------------------
    def _shard_features(self, shard: int) -> np.ndarray | None:
        """The whole shard's features from the cache, or None if it does not fit."""
        if shard in self._cache:
            self._cache.move_to_end(shard)
            return self._cache[shard]
        prov = self.provenance
        nbytes = (self._shards[shard].segments * prov.tokens_per_segment * prov.dim
                  * np.dtype(prov.dtype).itemsize)
        if nbytes > self.cache_bytes:
            return None
        data, *times = self._shards[shard].read("features", "start_s", "end_s")
        self._times[shard] = tuple(times)
        self._cache[shard] = data
        self._cached += data.nbytes
        while self._cached > self.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached -= old.nbytes
        return data

    def get(self, video_id: str) -> np.ndarray:
        """One video's features, [S, K, D] in the store's dtype."""
        e = self.entry(video_id)
        lo, hi = e.first_segment, e.first_segment + e.num_segments
        whole = self._shard_features(e.shard)
        if whole is not None:
            return whole[lo:hi]
        return self._shards[e.shard]["features"][lo:hi]

    def times(self, video_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(start_s, end_s) of one video's segments; read once per shard and kept."""
        e = self.entry(video_id)
        if e.shard not in self._times:
            self._times[e.shard] = tuple(self._shards[e.shard].read("start_s", "end_s"))
        start, end = self._times[e.shard]
        sl = slice(e.first_segment, e.first_segment + e.num_segments)
        return start[sl], end[sl]

    def frame_indices(self, video_id: str) -> np.ndarray:
        """[S, F] frame indices each segment was computed from (-1 where unknown)."""
        e = self.entry(video_id)
        sl = slice(e.first_segment, e.first_segment + e.num_segments)
        return self._shards[e.shard]["frame_indices"][sl]

    def iter_videos(self, status: str = "ok") -> Iterator[tuple[str, np.ndarray]]:
        """(video_id, [S, K, D]) in storage order, reading each shard's features once."""
        by_shard: dict[int, list[VideoEntry]] = {}
        for e in self._index.values():
            if e.status == status:
                by_shard.setdefault(e.shard, []).append(e)
        for shard, entries in by_shard.items():
            whole = self._shard_features(shard)
            if whole is None:
                whole = self._shards[shard]["features"][...]
            for e in entries:
                yield e.video_id, whole[e.first_segment:e.first_segment + e.num_segments]

    def unusable(self) -> dict[str, str]:
        """Ok videos that no trainer should read, and why: no segment, or NaN/Inf features
        (a store from an older version or another tool; this version's writers refuse them).
        One pass over the features."""
        return {vid: problem for vid, f in self.iter_videos()
                if (problem := unstorable(f, self.provenance.dtype))}

    def check(self, deep: bool = False) -> dict[str, str]:
        """What does not match the schema, by shard: each array's shape and dtype against the
        provenance and the shard's index (metadata only), and with `deep` every chunk read
        back (a truncated or corrupted chunk fails to decode). {} for a sound store."""
        bad = {}
        for shard in self._shards:
            try:
                arrays = [shard[n] for n in ("features", "start_s", "end_s")]  # metadata
                if deep and not all(np.isfinite(a[...]).all() for a in arrays):
                    bad[shard.name] = "non-finite values"
            except StoreError as e:
                bad[shard.name] = str(e).split(f"shard {shard.name}: ", 1)[-1]
            except Exception as e:  # a chunk that no longer decodes, whatever the codec says
                bad[shard.name] = (f"cannot be read back ({type(e).__name__}: "
                                   f"{str(e).splitlines()[0][:120] if str(e) else ''})")
        return bad

    def info(self) -> dict[str, Any]:
        """Provenance, sizes and counts, as `hiermovie store info` prints them."""
        entries = list(self._index.values())
        failed = [e for e in entries if e.status != "ok"]
        stored = sum(g.group["features"].nbytes_stored() for g in self._shards)  # unchecked:
        raw = sum(g.group["features"].nbytes for g in self._shards)  # check() reports
        return {
            "url": self.url,
            "provenance": self.provenance.to_dict(),
            "storage": self.storage,
            "shards": len(self._shards),
            "videos": len(entries),
            "videos_ok": len(entries) - len(failed),
            "videos_failed": len(failed),
            "segments": sum(e.num_segments for e in entries),
            "feature_bytes": int(raw),
            "feature_bytes_stored": int(stored),
            "failures": {e.video_id: e.error for e in failed[:20]},
        }


def _float(x: float | None) -> float:
    return float("nan") if x is None else float(x)


class _Shard:
    """A committed shard's arrays, opened on first use and checked against the schema then:
    an altered shard is refused naming it, before any trainer reads a value."""

    def __init__(self, group: zarr.Group, segments: int, name: str = "",
                 store: FeatureStore | None = None) -> None:
        self.group = group
        self.segments, self.name, self.store = segments, name, store
        self.arrays: dict[str, zarr.Array] = {}

    def read(self, *names: str) -> list[np.ndarray]:
        """Whole arrays, fetched concurrently (one round trip on object storage)."""
        # zarr's synchronous calls from several threads run concurrently on zarr's own event
        # loop: concurrency through the public API alone. A pool per call, not one per
        # process, so that a forked DataLoader worker never inherits a pool without threads.
        arrays = [self[n] for n in names]  # checked against the schema first
        try:
            with ThreadPoolExecutor(len(names)) as pool:
                return list(pool.map(lambda a: a[...], arrays))
        except (ValueError, TypeError, OSError) as e:  # a chunk that no longer decodes
            url = self.store.url if self.store else ""
            raise StoreError(f"{url}: shard {self.name}: cannot be read back "
                             f"({str(e).splitlines()[0][:160] if str(e) else type(e).__name__})"
                             "; the shard is damaged") from None

    def __getitem__(self, name: str) -> zarr.Array:
        if name not in self.arrays:
            arr = self.group[name]
            self._conforms(name, arr)
            self.arrays[name] = arr
        return self.arrays[name]

    def _conforms(self, name: str, arr: zarr.Array) -> None:
        if self.store is None:
            return
        prov = self.store.provenance
        want = {"features": ((self.segments, prov.tokens_per_segment, prov.dim), prov.dtype),
                "start_s": ((self.segments,), "float64"),
                "end_s": ((self.segments,), "float64")}.get(name)
        if want and (tuple(arr.shape) != want[0] or np.dtype(arr.dtype) != np.dtype(want[1])):
            raise StoreError(f"{self.store.url}: shard {self.name}: {name} is "
                             f"{tuple(arr.shape)} {arr.dtype}, the schema says {want[0]} "
                             f"{want[1]} (the shard was altered); refusing to read it")


def usable_videos(stores: list[FeatureStore], job: str) -> tuple[list[str], dict[str, str]]:
    """The stores' ok videos (a video in several: once) less those whose stored features no
    trainer should read, which are named on stderr and returned with the reason: the one check
    every way features enter a model goes through."""
    bad = {v: f"{st.url}: {why}" for st in stores for v, why in st.unusable().items()}
    if bad:
        shown = "; ".join(f"{v} ({why})" for v, why in list(bad.items())[:5])
        print(f"{job}: skipping {len(bad)} video(s) whose stored features are unusable: "
              f"{shown}{' ...' if len(bad) > 5 else ''}", file=sys.stderr)
    have = dict.fromkeys(v for st in stores for v in st.videos())
    return [v for v in have if v not in bad], bad
