"""The backbone part of a job's config, apart from the models so the CLI reads it without
importing torch."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hiermovie.config import ConfigError, opt

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


# name prefix -> the module (in `pipeline.backbones`) that registers it, imported on first use
FAMILIES = {"tiny3d": "tiny3d", "torchscript": "scripted", "trained": "trained",
            "zoo": "trained", "slow_r50": "resnet", "torchvision": "tv", "hf": "hf",
            "hf-image": "hf"}
ZOO = Path(__file__).resolve().parents[1] / "zoo"


def zoo_path(name: str) -> Path:
    """The shipped file of `zoo/<name>`, or one line listing what the zoo holds."""
    arg = name.partition("/")[2]
    shipped = sorted(p.stem for p in ZOO.glob("*.safetensors"))
    if arg not in shipped:
        raise ConfigError(f"backbone.name: {name}: not in the zoo (shipped: "
                          f"{', '.join('zoo/' + n for n in shipped) or 'none'})")
    return ZOO / f"{arg}.safetensors"


def check_backbone(cfg: BackboneConfig) -> None:
    """What can be refused without building the model (one line, before a job starts Ray or
    a model actor): an unknown name, with the closest known one; a weights file, trained
    output or zoo entry that is not there."""
    prefix, _, arg = cfg.name.partition("/")
    if prefix not in FAMILIES:
        close = difflib.get_close_matches(prefix, FAMILIES, n=1, cutoff=0.5)
        raise ConfigError(f"backbone.name: unknown backbone {cfg.name!r} (known: "
                          f"{', '.join(sorted(FAMILIES))})"
                          + (f"; did you mean {close[0]!r}?" if close else ""))
    hub_ok = prefix in ("hf", "hf-image")  # a hub id is not a local path
    if cfg.weights and not hub_ok and not os.path.exists(cfg.weights):
        raise ConfigError(f"backbone.weights: {cfg.weights}: no such file or directory")
    if prefix == "zoo":
        zoo_path(cfg.name)
    if prefix == "trained" and not os.path.exists(arg or cfg.weights):
        raise ConfigError(f"backbone.name: {cfg.name}: no {arg or cfg.weights} (expected the "
                          "output folder or backbone.safetensors of `hiermovie "
                          "pretrain-backbone`)")
