"""The backbone part of a job's config, apart from the models so the CLI reads it without
importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hiermovie.config import opt

Precision = Literal["auto", "fp32", "bf16", "fp16"]


@dataclass
class BackboneSource:
    """Which backbone, at which input size, spelt the same in every job: `--backbone.name`,
    `--backbone.weights`, `--backbone.input_size`."""

    name: str = opt("tiny3d", "registry name (see docs/backbones.md)")
    weights: str = opt("", "local checkpoint/directory or hub id; empty = random init")
    input_size: int = opt(0, "square input (crop) size in pixels; 0 = the backbone's default")

    def __post_init__(self) -> None:
        if self.input_size < 0:
            raise ValueError("input_size: must be >= 0")


@dataclass
class BackboneConfig(BackboneSource):
    """A backbone as extract runs it."""

    tokens: list[int] = opt([1, 1, 1], "pooled token grid (t, h, w) per segment; K = t*h*w")
    precision: Precision = opt("auto", "auto = bf16 on GPU and on CPUs with AVX-512 BF16")
    batch_size: int = opt(8, "segments per forward pass")
    seed: int = opt(0, "seed for random initialisation")

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.tokens) != 3 or min(self.tokens) < 1:
            raise ValueError("tokens: must be three positive integers (t, h, w)")
        if self.batch_size < 1:
            raise ValueError("batch_size: must be >= 1")


__all__ = ["BackboneConfig", "Precision"]
