"""trained/<dir or file>: the output of `hiermovie pretrain-backbone`, rebuilt as the
architecture recorded in the file, with its training provenance; zoo/<name>: such a file
shipped in `hiermovie/zoo/` (a model zoo of the project's own level-1 weights)."""

from __future__ import annotations

import os
from dataclasses import replace

from hiermovie.config import ConfigError
from hiermovie.pipeline.backbone_config import BackboneConfig, zoo_path
from hiermovie.pipeline.backbones.registry import Backbone, factory, register
from hiermovie.pipeline.backbones.weights import weights_origin


@register("trained")
def _trained(cfg: BackboneConfig, arg: str) -> Backbone:
    path = arg or cfg.weights
    if os.path.isdir(path):
        path = os.path.join(path, "backbone.safetensors")
    if not os.path.isfile(path):
        raise ConfigError(f"backbone.name: {cfg.name}: no {path} (expected the output folder or "
                         "backbone.safetensors of `hiermovie pretrain-backbone`)")
    origin = weights_origin(path)
    arch = origin["architecture"]
    prefix, _, rest = arch.partition("/")
    build = factory(prefix) if arch and prefix != "trained" else None
    if build is None:
        raise ConfigError(f"backbone.name: {path}: no known architecture recorded in the file")
    model = build(replace(cfg, name=arch, weights=path), rest)
    model.origin = origin
    model.input_size = int(origin.get("input_size") or model.input_size)  # as it was trained
    return model


@register("zoo")
def _zoo(cfg: BackboneConfig, arg: str) -> Backbone:
    return _trained(replace(cfg, weights=""), str(zoo_path(cfg.name)))
