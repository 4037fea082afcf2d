"""The feature-store schema, defined once (documented in docs/feature-store.md).

A store is a Zarr v3 group::

    <root>/zarr.json            attributes["hiermovie"] = {format_version, provenance, storage}
    <root>/shards/<shard_id>/   one group per shard, written by exactly one writer
        features       [segment, token, channel]  float16 (or float32)
        segment_video  [segment]                  int32, row of the owning video in this shard
        segment_index  [segment]                  int32, position of the segment in its video
        start_s, end_s [segment]                  float64, segment time span in seconds
        frame_indices  [segment, frame]           int64, decoded frame indices (-1 = unknown)
        video_id       [video]                    string
        first_segment  [video]                    int64, row of the video's first segment
        num_segments   [video]                    int64
        duration_s, fps [video]                   float64
        num_frames     [video]                    int64
        status         [video]                    string, "ok" or "failed"
        error          [video]                    string, "" when ok
    A shard is committed by one last write of its group's zarr.json holding
    attributes {"complete": true, "videos", "segments", "index"}; readers ignore shards whose
    commit record is missing or inconsistent (`is_committed`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

FORMAT_VERSION = 1
ROOT_KEY = "hiermovie"
SHARDS = "shards"
COMPLETE = "complete"
LEASE = ".hiermovie-writer.json"  # the writing job's lease (feature_store.lease)
DTYPES = ("float16", "float32")

SEGMENT_ARRAYS = {
    "segment_video": "int32",
    "segment_index": "int32",
    "start_s": "float64",
    "end_s": "float64",
}
VIDEO_ARRAYS = {
    "first_segment": "int64",
    "num_segments": "int64",
    "duration_s": "float64",
    "fps": "float64",
    "num_frames": "int64",
}
VIDEO_STRINGS = ("video_id", "status", "error")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _package_version() -> str:
    from hiermovie import __version__

    return __version__


@dataclass(frozen=True)
class Provenance:
    """What produced the features. Two writers may share a store only if `identity()` matches."""

    backbone: str
    dim: int
    tokens_per_segment: int = 1
    dtype: str = "float16"
    weights_fingerprint: str = ""
    weights_origin: dict[str, Any] = field(default_factory=dict)  # e.g. pretrain-backbone's
    sampling: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    package_version: str = field(default_factory=_package_version)
    created: str = field(default_factory=_now)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype: must be one of {DTYPES}, got {self.dtype!r}")
        if self.dim < 1 or self.tokens_per_segment < 1:
            raise ValueError("dim and tokens_per_segment must be >= 1")

    def identity(self) -> dict[str, Any]:
        """The fields that define the features' meaning (not when or by which version)."""
        d = self.to_dict()
        d.pop("created")
        d.pop("package_version")
        return d

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Provenance:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class VideoRecord:
    """One video's extracted features and metadata; a failed video has zero segments."""

    video_id: str
    features: np.ndarray  # [S, K, D]
    start_s: np.ndarray  # [S]
    end_s: np.ndarray  # [S]
    frame_indices: np.ndarray  # [S, F]
    duration_s: float = float("nan")
    fps: float = float("nan")
    num_frames: int = -1
    status: str = "ok"
    error: str = ""

    @classmethod
    def failed(cls, video_id: str, error: str, tokens: int, dim: int, frames: int = 0,
               **meta: Any) -> VideoRecord:
        return cls(
            video_id=video_id,
            features=np.zeros((0, tokens, dim), np.float32),
            start_s=np.zeros(0),
            end_s=np.zeros(0),
            frame_indices=np.zeros((0, frames), np.int64),
            status="failed",
            error=error,
            **meta,
        )

    @property
    def num_segments(self) -> int:
        return int(self.features.shape[0])


def is_committed(attrs: Any) -> bool:
    """True for a shard whose commit record is whole: complete, with an index of every video."""
    if attrs.get(COMPLETE) is not True:
        return False
    index = attrs.get("index")
    if not isinstance(index, dict) or not isinstance(attrs.get("videos"), int):
        return False
    columns = (*VIDEO_ARRAYS, *VIDEO_STRINGS)
    return all(isinstance(index.get(c), list) and len(index[c]) == attrs["videos"]
               for c in columns) and sum(index["num_segments"]) == attrs.get("segments")


def shard_id_for(video_ids: list[str]) -> str:
    """A shard's name is a hash of its videos, so the same plan always names the same shards."""
    h = hashlib.sha1("\n".join(video_ids).encode("utf-8")).hexdigest()
    return h[:16]


def unstorable(features: np.ndarray, dtype: str) -> str:
    """Why a video's features cannot be stored as an ok video in `dtype` ("" if they can): no
    segment, or values that are not finite *as stored* (a float32 above 65504 is Inf in
    float16), so every writer checks what a reader will get."""
    if features.shape[0] == 0:
        return "have no segments"
    with np.errstate(over="ignore", invalid="ignore"):  # the overflow is what is reported
        stored = np.asarray(features).astype(dtype, copy=False)
    bad = int(stored.size - np.isfinite(stored).sum())
    if bad:
        return (f"contain {bad} NaN/Inf values as stored in {dtype} ({dtype} holds |x| <= "
                f"{float(np.finfo(dtype).max):g})")
    return ""
