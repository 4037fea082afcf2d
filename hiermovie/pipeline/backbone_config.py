"""The backbone part of a job's config, apart from the models so the CLI reads it without
importing torch."""

from __future__ import annotations

import difflib
import os
import re
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
# frames per segment and their spacing (at 30 fps) each model zoo entry was trained with
# (PySlowFast's configs: SlowFast 8x8 reads 32 frames 2 apart, the slow pathway every 4th);
# the plan's default for these backbones
RECIPES = {"slowfast_r50": (32, 2), "slowfast_r50_4x16": (32, 2), "slowfast_r101": (32, 2),
           "i3d_r50": (8, 8), "x3d_xs": (4, 12), "x3d_s": (13, 6), "x3d_m": (16, 5),
           "x3d_l": (16, 5), "mvit_base_16x4": (16, 4)}
FAMILIES |= dict.fromkeys(RECIPES, "ptv")
DEFAULT_SAMPLING = (16, 4)  # frames, spacing: backbones without a recipe of their own
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
    if prefix in RECIPES and arg:
        raise ConfigError(f"backbone.name: {cfg.name}: {prefix} takes no '/...' part (its "
                          "weights go in --backbone.weights)")
    if prefix not in FAMILIES:
        close = difflib.get_close_matches(prefix, FAMILIES, n=1, cutoff=0.5)
        raise ConfigError(f"backbone.name: unknown backbone {cfg.name!r} (known: "
                          f"{', '.join(sorted(FAMILIES))})"
                          + (f"; did you mean {close[0]!r}?" if close else ""))
    hub_ok = prefix in ("hf", "hf-image")  # a hub id is not a local path
    if hub_ok:
        check_hub_id(cfg.weights or arg)
    if cfg.weights and not hub_ok and not os.path.exists(cfg.weights):
        raise ConfigError(f"backbone.weights: {cfg.weights}: no such file or directory")
    if prefix == "zoo":
        zoo_path(cfg.name)
    if prefix == "trained" and not os.path.exists(arg or cfg.weights):
        raise ConfigError(f"backbone.name: {cfg.name}: no {arg or cfg.weights} (expected the "
                          "output folder or backbone.safetensors of `hiermovie "
                          "pretrain-backbone`)")


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$")


def check_hub_id(src: str) -> None:
    """A Hugging Face source that can never load, refused before any model starts: no
    source, not a folder and not shaped as a hub id, or a hub id not in the local cache while
    the hub is off (HF_HUB_OFFLINE, as on machines without internet)."""
    if not src:
        raise ConfigError("backbone.name: hf/ needs a hub id or folder (hf/<id> or "
                          "--backbone.weights DIR)")
    if os.path.exists(src):
        return
    if not HUB_ID.match(src) or ".." in src or "--" in src:
        raise ConfigError(f"backbone.weights: {src[:200]!r}: no such folder, and not a hub id "
                          "(namespace/name)")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(src, "config.json"), str):
            raise ConfigError(f"backbone.weights: {src}: not in the local Hugging Face cache "
                              "and HF_HUB_OFFLINE is set (download it where there is internet, "
                              "or give a local folder)")
