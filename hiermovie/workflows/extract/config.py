"""`extract`'s config, with the values derived from it: the plan chosen for the input, the
store's identity (sampling, settings, provenance), tokens per segment, part size."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hiermovie.config import opt
from hiermovie.feature_store import Provenance
from hiermovie.pipeline.backbone_config import DEFAULT_SAMPLING, RECIPES, BackboneConfig
from hiermovie.pipeline.decode import Resize
from hiermovie.pipeline.plans import SPREAD_FIELDS, PlanConfig

if TYPE_CHECKING:
    from hiermovie.pipeline.workers import BackboneInfo  # imports torch: for types only

PART_BYTES = 4 << 20  # frames a decode task hands the model at a time: memory flat in length


@dataclass
class ExtractConfig:
    input: str = opt("", "folder of videos, .csv/.jsonl manifest, or vidsitu:ROOT / lvu:ROOT")
    store: str = opt("", "Zarr store: a local path or an fsspec URL (s3://...)")
    backbone: BackboneConfig = opt(default_factory=BackboneConfig)
    plan: PlanConfig = opt(default_factory=PlanConfig)
    resize: Resize = opt("squash", "squash to the input size (VidSitu) or short side + crop")
    dtype: Literal["float16", "float32"] = opt("float16", "stored feature dtype")
    videos_per_shard: int = opt(32, "videos per shard (one shard = one write)")
    chunk_segments: int = opt(4096, "segments per Zarr chunk (a shard in one chunk reads fastest)")
    compressor: Literal["none", "zstd", "blosc-zstd"] = opt("none", "feature compression")
    storage_options: dict = opt({}, "fsspec options for the store (e.g. endpoint_url)")
    ray_address: str = opt("", "join this Ray cluster; empty = $RAY_ADDRESS when set (as in "
                               "`ray job submit`), else start a local instance")
    num_cpus: int = opt(0, "local Ray instance: CPUs to use (0 = all)")
    model_workers: int = opt(0, "model actors (0 = one per GPU, else one per CPU)")
    decode_workers: int = opt(0, "concurrent decode tasks (0 = one per CPU not running a GPU "
                                 "actor, at least 1)")
    decode_inflight: int = opt(0, "parts (a short clip, or ~4 MiB of a film's frames) decoded "
                                  "ahead of the model (0 = 2 per model actor + 2)")
    videos_per_call: int = opt(0, "parts (a short clip, or ~4 MiB of a film's frames) per model "
                                  "call (0 = 1 on CPU, 8 on GPU)")
    limit: int = opt(0, "only the first N videos (0 = all)")
    decode_timeout_s: float = opt(120.0, "a video's decode deadline: this many seconds ...")
    decode_timeout_per_s: float = opt(2.0, "... plus this many per second of video (read from "
                                           "its header); past it the task is killed and "
                                           "retried once, then the video is recorded failed")
    retry_failed: bool = opt(False, "decode again the videos earlier runs recorded as failed "
                                    "(their shards are rewritten)")
    strict: bool = opt(False, "exit non-zero (3) when any video fails")
    report: str = opt("", "JSON report path (default: next to a local store)")
    progress: bool = opt(True, "show a progress bar")

    def __post_init__(self) -> None:
        for name in ("videos_per_shard", "chunk_segments"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1")
        for name in ("num_cpus", "model_workers", "decode_workers", "decode_inflight",
                     "videos_per_call", "limit", "decode_timeout_per_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0")
        if not self.decode_timeout_s > 0:
            raise ValueError("decode_timeout_s: must be > 0")

    def resolved(self, has_segments: bool) -> tuple[ExtractConfig, str]:
        """This config with the plan's `auto` and 0s chosen for its input and backbone, and
        the line that says what was chosen."""
        plan, chosen = self.plan.resolved(self.input, has_segments, RECIPES.get(
            self.backbone.name, DEFAULT_SAMPLING))
        return replace(self, plan=plan), chosen

    @property
    def tokens_per_segment(self) -> int:
        """Tokens per stored segment: the backbone's grid, times the clips when kept as
        tokens."""
        k = int(np.prod(self.backbone.tokens))
        return k * self.plan.clips if self.plan.clip_pool == "tokens" else k

    def sampling(self) -> dict[str, Any]:
        """The plan as provenance. The coverage fields are recorded only when they differ from
        the default centred clip, so stores written before they existed keep their identity
        (and `kind` first, their key order)."""
        plan = {"kind": self.plan.kind, **asdict(self.plan)}
        if self.plan.coverage == "centre":
            for k in ("coverage", *SPREAD_FIELDS):
                plan.pop(k)
        return {**plan, "resize": self.resize}

    def settings(self) -> dict[str, Any]:
        """The fields of the store's identity a rerun knows before its model is loaded (the
        weights' fingerprint and the model's own fields are checked when the store is
        opened)."""
        return {"backbone": self.backbone.name, "tokens_per_segment": self.tokens_per_segment,
                "dtype": self.dtype, "sampling": self.sampling()}

    def provenance(self, model: BackboneInfo) -> Provenance:
        """The store's identity, given what the model actors `describe`."""
        return Provenance(
            backbone=self.backbone.name, dim=model.dim,
            tokens_per_segment=self.tokens_per_segment, dtype=self.dtype,
            weights_fingerprint=model.fingerprint, weights_origin=model.origin,
            sampling=self.sampling(),
            preprocessing={"input_size": model.input_size, "mean": list(model.mean),
                           "std": list(model.std), "precision": model.precision,
                           "tokens": list(self.backbone.tokens),
                           "weights": self.backbone.weights})

    def part_segments(self, input_size: int) -> int:
        """Segments a decode task streams at a time: about PART_BYTES of frames, a whole
        number of forward batches (so a part's features equal the whole video's, bitwise, on
        CPU)."""
        per_segment = self.plan.clips * self.plan.num_frames * input_size**2 * 3
        batches = max(1, PART_BYTES // (per_segment * self.backbone.batch_size))
        return batches * self.backbone.batch_size

    @property
    def report_path(self) -> Path:
        if self.report:
            return Path(self.report)
        if "://" in self.store:
            return Path("extract-report.json")
        return Path(self.store.rstrip("/") + ".report.json")
