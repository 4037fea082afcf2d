"""Backbones by name: the base class, the registry and `load_backbone`."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
from torch import nn

from hiermovie.config import ConfigError
from hiermovie.pipeline.backbone_config import FAMILIES, BackboneConfig
from hiermovie.pipeline.backbones.weights import weights_origin


class Backbone(nn.Module):
    """A frozen encoder and what its inputs must look like."""

    dim: int
    input_size: int = 112
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    num_frames: int | None = None  # required T, or None for any
    channels_last: bool = False
    # subclasses define forward: [B, 3, T, H, W] -> [B, D, t, h, w]

    def __init__(self) -> None:
        super().__init__()
        self.origin: dict = {}  # how the weights were trained, when the weights file says so

    def after_pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, K, D] pooled tokens -> the features stored (a model whose last layers run after
        its global pool, as X3D's head, applies them here)."""
        return tokens


REGISTRY: dict[str, Callable[[BackboneConfig, str], Backbone]] = {}


def register(prefix: str) -> Callable:
    def deco(fn: Callable[[BackboneConfig, str], Backbone]) -> Callable:
        REGISTRY[prefix] = fn
        return fn
    return deco


def factory(prefix: str) -> Callable[[BackboneConfig, str], Backbone] | None:
    """The builder registered for `prefix`, importing its module first if need be."""
    if prefix not in REGISTRY and prefix in FAMILIES:
        importlib.import_module(f"{__package__}.{FAMILIES[prefix]}")
    return REGISTRY.get(prefix)


def load_backbone(cfg: BackboneConfig) -> Backbone:
    """Build the named backbone, load its weights, freeze it and put it in eval mode."""
    prefix, _, arg = cfg.name.partition("/")
    build = factory(prefix)
    if build is None:
        raise ConfigError(f"backbone.name: unknown backbone {cfg.name!r} "
                         f"(known: {', '.join(sorted(FAMILIES))})")
    with torch.random.fork_rng(devices=[]):  # seeded here; the caller's RNG is untouched
        torch.manual_seed(cfg.seed)
        model = build(cfg, arg)
    if cfg.weights.endswith(".safetensors"):
        model.origin = weights_origin(cfg.weights)
    if cfg.input_size:
        model.input_size = cfg.input_size
    model.eval().requires_grad_(False)
    return model
