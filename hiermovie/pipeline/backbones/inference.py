"""Running a frozen backbone: precision, BatchNorm folding, input normalisation, token pooling."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hiermovie.hardware import resolve_precision
from hiermovie.pipeline.backbone_config import BackboneConfig, Precision
from hiermovie.pipeline.backbones.registry import Backbone

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def precision_dtype(precision: Precision, device: torch.device) -> torch.dtype:
    """The autocast dtype of `precision` on `device` ("auto": `hardware.resolve_precision`)."""
    return DTYPES[resolve_precision(precision, device.type)]


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm into the convolution just before it, in place; returns
    how many were folded. Inference only: the outputs change by float rounding, the weights'
    fingerprint does not (take it first). Folded pairs are those whose order is certain: inside
    an nn.Sequential, PySlowFast's named pairs (`X` then `X_bn`, e.g. branch2.a, a_bn) and
    PyTorchVideo's (`conv_X` then `norm_X`, `X_conv` then `X_norm`, `conv` then `norm`).
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
            pairs = [(n, m) for n in names for m in _norm_names(n) if m in parent._modules]
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


def _norm_names(conv: str) -> list[str]:
    """The names of the norm that directly follows a conv so named, in the two layouts."""
    names = [conv + "_bn"]
    if conv.startswith("conv"):
        names.append("norm" + conv[4:])
    if conv.endswith("_conv"):
        names.append(conv[:-5] + "_norm")
    return names


def _plain_sequential(m: nn.Module) -> bool:
    return isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward


def normalise(x: torch.Tensor, model: Backbone) -> torch.Tensor:
    """uint8 clips [..., 3, T, H, W] -> the float input `model` was trained on: scaled to
    [0, 1], then standardised by its mean and std (the one normalisation of extract and
    pretrain-backbone)."""
    shape = (3, 1, 1, 1)
    mean = torch.tensor(model.mean, device=x.device).view(shape)
    std = torch.tensor(model.std, device=x.device).view(shape)
    return (x.float() / 255 - mean) / std


def preprocess(frames: np.ndarray, model: Backbone, device: torch.device) -> torch.Tensor:
    """uint8 [N, T, H, W, 3] -> normalised float [N, 3, T, H, W] on `device`."""
    x = normalise(torch.from_numpy(frames).to(device).permute(0, 4, 1, 2, 3), model)
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
    dtype = precision_dtype(cfg.precision, device)
    out = []
    for i in range(0, len(frames), cfg.batch_size):
        x = preprocess(frames[i:i + cfg.batch_size], model, device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            tokens = model.after_pool(pool_tokens(model(x), cfg.tokens))
        out.append(tokens.float().cpu().numpy())
    if not out:
        return np.zeros((0, int(np.prod(cfg.tokens)), model.dim), np.float32)
    return np.concatenate(out)
