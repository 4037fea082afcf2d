"""Hugging Face transformers models as frozen backbones.

`hf/<hub id or dir>`: video transformers (VideoMAE, TimeSformer, ViViT, V-JEPA 2); their
patch tokens are laid back on the (t, h, w) grid. `hf-image/<hub id or dir>`: image towers
(CLIP, SigLIP, DINOv2) run on every frame, one pooled token per frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from hiermovie._compat import ensure_torchvision_importable
from hiermovie.config import ConfigError
from hiermovie.pipeline.backbone_config import BackboneConfig
from hiermovie.pipeline.backbones.registry import Backbone, register

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _load(src: str):
    ensure_torchvision_importable()
    from transformers import AutoConfig, AutoModel

    try:
        return AutoConfig.from_pretrained(src), AutoModel.from_pretrained(src)
    except OSError as e:
        raise ConfigError(f"backbone.weights: cannot load {src!r} (a local folder, or a hub id "
                         f"when online): {str(e).splitlines()[0][:200]}") from None


def _norm_stats(src: str) -> tuple[tuple, tuple]:
    p = Path(src) / "preprocessor_config.json"
    if p.exists():
        d = json.loads(p.read_text())
        if "image_mean" in d and "image_std" in d:
            return tuple(d["image_mean"]), tuple(d["image_std"])
    return IMAGENET_MEAN, IMAGENET_STD


def _first(value: int | list | tuple) -> int:
    return int(value[0] if isinstance(value, list | tuple) else value)


class HFVideo(Backbone):
    def __init__(self, src: str) -> None:
        super().__init__()
        hcfg, self.net = _load(src)
        self.kind = hcfg.model_type
        self.dim = hcfg.hidden_size
        self.input_size = int(getattr(hcfg, "crop_size", None) or _first(hcfg.image_size))
        self.num_frames = getattr(hcfg, "num_frames", None) or getattr(hcfg, "frames_per_clip",
                                                                       None)
        tub = getattr(hcfg, "tubelet_size", 1)
        self.tubelet = _first(tub)
        self.patch = _first(tub[1:]) if isinstance(tub, list) and len(tub) == 3 else _first(
            hcfg.patch_size)
        self.mean, self.std = _norm_stats(src)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        pv = x.permute(0, 2, 1, 3, 4)  # [B, T, C, H, W]
        key = "pixel_values_videos" if self.kind == "vjepa2" else "pixel_values"
        tokens = self.net(**{key: pv}).last_hidden_state
        gt, gh, gw = t // self.tubelet, h // self.patch, w // self.patch
        tokens = tokens[:, -gt * gh * gw:]  # drop a class token if there is one
        return tokens.transpose(1, 2).reshape(b, -1, gt, gh, gw)


class HFImage(Backbone):
    def __init__(self, src: str) -> None:
        super().__init__()
        hcfg, net = _load(src)
        self.net = getattr(net, "vision_model", net)
        vcfg = getattr(hcfg, "vision_config", hcfg)
        self.dim = vcfg.hidden_size
        self.input_size = _first(vcfg.image_size)
        self.mean, self.std = _norm_stats(src)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        out = self.net(pixel_values=frames)
        pooled = out.pooler_output if out.pooler_output is not None else \
            out.last_hidden_state.mean(1)
        return pooled.reshape(b, t, -1).permute(0, 2, 1)[..., None, None]


@register("hf")
def _hf(cfg: BackboneConfig, arg: str) -> Backbone:
    return HFVideo(cfg.weights or arg)


@register("hf-image")
def _hf_image(cfg: BackboneConfig, arg: str) -> Backbone:
    return HFImage(cfg.weights or arg)
