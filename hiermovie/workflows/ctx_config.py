"""The contextualizer's shape as a job reads it (torch-free, so `--help` stays fast)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hiermovie.config import opt


@dataclass
class CtxModelConfig:
    width: int = opt(1024, "transformer width")
    layers: int = opt(3, "encoder layers")
    heads: int = opt(8, "attention heads")
    ffn: int = opt(2048, "feed-forward width")
    dropout: float = opt(0.1, "dropout")
    token_mode: Literal["pool", "flatten"] = opt(
        "pool", "K tokens per segment: pool them, or flatten into the sequence")
    position: Literal["index", "time"] = opt(
        "index", "positions from segment order (index) or start time (time)")
    time_scale: float = opt(1.0, "with position=time: positions are start_s / time_scale")

    def __post_init__(self) -> None:
        if self.width % self.heads or self.width % 2:
            raise ValueError("width: must be even and divisible by heads")
        if self.time_scale <= 0:
            raise ValueError("time_scale: must be > 0")
