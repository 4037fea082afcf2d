"""Frozen video backbones, by name.

A backbone maps normalised clips [B, 3, T, H, W] to a feature map [B, D, t, h, w]; `encode`
pools that map to K = kt*kh*kw tokens per segment. Names:

    tiny3d                   a small 3D CNN (tests, demos, pretrain-backbone)
    slow_r50                 Slow-only ResNet-50 in PySlowFast's layout (rho-BYOL, CVRL ...)
    torchvision/<model>      r3d_18, mc3_18, r2plus1d_18, s3d, mvit_v1_b, mvit_v2_s, swin3d_t/s/b
    hf/<hub id or dir>       transformers video models (VideoMAE, TimeSformer, ViViT, V-JEPA 2 ...)
    hf-image/<hub id or dir> per-frame image towers (CLIP, SigLIP, DINOv2), pooled per segment
    torchscript              a TorchScript or torch.export file given as `weights`
    trained/<dir or file>    the output of `hiermovie pretrain-backbone` (architecture and
                             training provenance are read from the file)

Weights come from `weights` (a local file or directory, or a hub id); empty means random
initialisation from `seed`. Checkpoints are loaded without running pickled code.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from hiermovie.config import ConfigError
from hiermovie.hardware import cpu_has_bf16
from hiermovie.pipeline.backbone_config import BackboneConfig, Precision


class Backbone(nn.Module):
    """A frozen encoder and what its inputs must look like."""

    dim: int
    input_size: int = 112
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    num_frames: int | None = None  # required T, or None for any
    channels_last: bool = False
    origin: dict = {}  # how the weights were trained, when the weights file says so
    # subclasses define forward: [B, 3, T, H, W] -> [B, D, t, h, w]


REGISTRY: dict[str, Callable[[BackboneConfig, str], Backbone]] = {}


def register(prefix: str) -> Callable:
    def deco(fn: Callable[[BackboneConfig, str], Backbone]) -> Callable:
        REGISTRY[prefix] = fn
        return fn
    return deco


def load_backbone(cfg: BackboneConfig) -> Backbone:
    """Build the named backbone, load its weights, freeze it and put it in eval mode."""
    prefix, _, arg = cfg.name.partition("/")
    if prefix not in REGISTRY:
        _import_families()
    if prefix not in REGISTRY:
        raise ConfigError(f"backbone.name: unknown backbone {cfg.name!r} "
                         f"(known: {', '.join(sorted(REGISTRY))})")
    with torch.random.fork_rng(devices=[]):  # seeded here; the caller's RNG is untouched
        torch.manual_seed(cfg.seed)
        model = REGISTRY[prefix](cfg, arg)
    if cfg.weights.endswith(".safetensors"):
        model.origin = weights_origin(cfg.weights)
    if cfg.input_size:
        model.input_size = cfg.input_size
    model.eval().requires_grad_(False)
    return model


def _import_families() -> None:
    # importing a family module registers its names
    from hiermovie.pipeline import backbones_hf, backbones_resnet, backbones_tv  # noqa: F401


def load_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file or a torch checkpoint, never running pickled code."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"backbone.weights: {path}: file not found") from None
    except Exception as e:  # an UnpicklingError names what the file tried to run
        raise ConfigError(f"backbone.weights: {path}: refused to load: the file holds pickled "
                         f"objects other than tensors ({str(e).splitlines()[0][:160]}); "
                         "convert it to safetensors") from None
    for key in ("model_state", "state_dict", "model"):  # PySlowFast, Lightning, others
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ConfigError(f"backbone.weights: {path}: expected a state dict, got {type(obj)}")
    return obj


ARCHITECTURE_KEY, ORIGIN_KEY = "hiermovie.architecture", "hiermovie.origin"


def weights_origin(path: str) -> dict:
    """The training provenance `pretrain-backbone` writes into a safetensors file's header."""
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    return {"architecture": meta.get(ARCHITECTURE_KEY, ""),
            **json.loads(meta.get(ORIGIN_KEY, "{}"))}


def fingerprint(model: nn.Module) -> str:
    """sha256 over the parameters and buffers, in name order: same weights, same fingerprint."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
                 if t.numel() else b"")
    return h.hexdigest()[:16]


def resolve_precision(precision: Precision, device: torch.device) -> torch.dtype:
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16
        return torch.bfloat16 if cpu_has_bf16() else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm into the convolution just before it, in place; returns
    how many were folded. Inference only: the outputs change by float rounding, the weights'
    fingerprint does not (take it first). Folded pairs are those whose order is certain: inside
    an nn.Sequential, and PySlowFast's named pairs (`X` then `X_bn`, e.g. branch2.a, a_bn).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    def conv_slot(parent: nn.Module, name: str) -> tuple[nn.Module, str] | None:
        """Where the conv that last runs in parent.name sits (inside nested Sequentials)."""
        while _plain_sequential(parent._modules[name]) and len(parent._modules[name]):
            parent = parent._modules[name]
            name = list(parent._modules)[-1]
        if isinstance(parent._modules[name], nn.modules.conv._ConvNd):
            return parent, name
        return None

    folded = 0
    for parent in list(model.modules()):
        names = list(parent._modules)
        if _plain_sequential(parent):
            pairs = list(zip(names, names[1:], strict=False))
        else:
            pairs = [(n, n + "_bn") for n in names if n + "_bn" in parent._modules]
        for a, b in pairs:
            bn, slot = parent._modules[b], conv_slot(parent, a)
            if slot is None or not isinstance(bn, nn.modules.batchnorm._BatchNorm) or \
                    bn.training or bn.running_mean is None:
                continue
            holder, name = slot
            if holder._modules[name].training:
                continue
            holder._modules[name] = fuse_conv_bn_eval(holder._modules[name], bn)
            parent._modules[b] = nn.Identity()
            folded += 1
    return folded


def _plain_sequential(m: nn.Module) -> bool:
    return isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward


def preprocess(frames: np.ndarray, model: Backbone, device: torch.device) -> torch.Tensor:
    """uint8 [N, T, H, W, 3] -> normalised float [N, 3, T, H, W] on `device`."""
    x = torch.from_numpy(frames).to(device).permute(0, 4, 1, 2, 3).float().div_(255)
    mean = torch.tensor(model.mean, device=device).view(1, 3, 1, 1, 1)
    std = torch.tensor(model.std, device=device).view(1, 3, 1, 1, 1)
    x = (x - mean) / std
    if model.channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return x


def pool_tokens(fmap: torch.Tensor, tokens: list[int]) -> torch.Tensor:
    """[B, D, t, h, w] -> [B, K, D] by adaptive average pooling to the token grid."""
    pooled = nn.functional.adaptive_avg_pool3d(fmap.float(), tuple(tokens))
    return pooled.flatten(2).transpose(1, 2)


@torch.inference_mode()
def encode(model: Backbone, frames: np.ndarray, cfg: BackboneConfig,
           device: torch.device | str = "cpu") -> np.ndarray:
    """Features [N, K, D] float32 of N segments' frames (uint8 [N, T, H, W, 3])."""
    device = torch.device(device)
    dtype = resolve_precision(cfg.precision, device)
    out = []
    for i in range(0, len(frames), cfg.batch_size):
        x = preprocess(frames[i:i + cfg.batch_size], model, device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            fmap = model(x)
        out.append(pool_tokens(fmap, cfg.tokens).cpu().numpy())
    if not out:
        return np.zeros((0, int(np.prod(cfg.tokens)), model.dim), np.float32)
    return np.concatenate(out)


class Tiny3D(Backbone):
    """Four strided 3D conv blocks; small enough for tests and for minutes-long pretraining."""

    input_size = 112
    channels_last = True

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        chans = [3, width, width * 2, width * 4, width * 4]
        layers: list[nn.Module] = []
        for i in range(4):
            k, s = ((1, 5, 5), (1, 2, 2)) if i == 0 else ((3, 3, 3), (1 + (i > 1), 2, 2))
            layers += [nn.Conv3d(chans[i], chans[i + 1], k, s, tuple(x // 2 for x in k),
                                 bias=False),
                       nn.BatchNorm3d(chans[i + 1]), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.dim = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@register("tiny3d")
def _tiny3d(cfg: BackboneConfig, arg: str) -> Backbone:
    model = Tiny3D(width=int(arg) if arg else 32)
    if cfg.weights:
        model.load_state_dict(load_state_dict(cfg.weights))
    return model


@register("torchscript")
def _torchscript(cfg: BackboneConfig, arg: str) -> Backbone:
    path = cfg.weights or arg
    if not path:
        raise ConfigError("backbone.weights: torchscript needs the model file")
    return ScriptedBackbone(path)


class ScriptedBackbone(Backbone):
    """A TorchScript (.pt) or torch.export (.pt2) file mapping clips to [B,D,t,h,w] or [B,D]."""

    def __init__(self, path: str) -> None:
        super().__init__()
        if path.endswith(".pt2"):
            self.inner = torch.export.load(path).module()
        else:
            self.inner = torch.jit.load(path, map_location="cpu")
        self.dim = 0  # known after the first forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        y = y.view(*y.shape, 1, 1, 1) if y.dim() == 2 else y
        self.dim = y.shape[1]
        return y


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
    if arch.split("/")[0] not in REGISTRY:
        _import_families()
    if not arch or arch.split("/")[0] not in REGISTRY or arch.startswith("trained"):
        raise ConfigError(f"backbone.name: {path}: no known architecture recorded in the file")
    prefix, _, rest = arch.partition("/")
    model = REGISTRY[prefix](replace(cfg, name=arch, weights=path), rest)
    model.origin = origin
    model.input_size = int(origin.get("input_size") or model.input_size)  # as it was trained
    return model
