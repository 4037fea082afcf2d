"""The contextualizer: a small transformer over one video's sequence of segment tokens.

Defaults follow VidSitu's event encoder (3 layers, width 1024, 8 heads, feed-forward 2048,
post-LN, sinusoidal positions, input MLP D -> width -> width). It is a transformers
`PreTrainedModel`, so `save_pretrained` / `from_pretrained` give one safetensors folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

import torch
from torch import nn

from hiermovie._compat import ensure_torchvision_importable
from hiermovie.config import from_dict, opt

ensure_torchvision_importable()
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel  # noqa: E402


@dataclass
class ContextualizerShape:
    """The contextualizer's shape: the fields a job reads as --model.*, defined only here."""

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


SHAPE_FIELDS = tuple(f.name for f in fields(ContextualizerShape))


class ContextualizerConfig(PretrainedConfig):
    """A `ContextualizerShape` plus what it reads (in_dim-d features, K tokens per segment),
    as a transformers config, so a saved folder reloads by itself."""

    model_type = "hiermovie-contextualizer"

    def __init__(self, in_dim: int = 2304, tokens_per_segment: int = 1, **kwargs) -> None:
        # from_dict checks the choices and __post_init__ the rest, for saved configs too
        shape = from_dict(ContextualizerShape,
                          {k: kwargs.pop(k) for k in SHAPE_FIELDS if k in kwargs})
        self.in_dim, self.tokens_per_segment = in_dim, tokens_per_segment
        for k in SHAPE_FIELDS:
            setattr(self, k, getattr(shape, k))
        super().__init__(**kwargs)


def sinusoid(pos: torch.Tensor, width: int) -> torch.Tensor:
    """[..., width] sinusoidal encoding of (possibly fractional) positions."""
    half = width // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=pos.device) / half)
    angle = pos.float()[..., None] * freq
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


class Contextualizer(PreTrainedModel):
    config_class = ContextualizerConfig
    base_model_prefix = "contextualizer"

    def __init__(self, config: ContextualizerConfig) -> None:
        super().__init__(config)
        c = config
        self.proj = nn.Sequential(nn.Linear(c.in_dim, c.width), nn.ReLU(),
                                  nn.Linear(c.width, c.width))
        self.mask_token = nn.Parameter(torch.zeros(c.width))
        self.token_embed = (nn.Embedding(c.tokens_per_segment, c.width)
                            if c.token_mode == "flatten" else None)
        layer = nn.TransformerEncoderLayer(c.width, c.heads, c.ffn, c.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.width)
        self.post_init()

    def layer_groups(self, lr: float, layer_decay: float = 1.0) -> list[dict]:
        """Optimiser groups for fine-tuning with layer-wise learning-rate decay (BEiT's): layer
        i of n at lr * layer_decay ** (n - 1 - i); the rest (input projection, mask token,
        norm), below the first layer, at lr * layer_decay ** n."""
        layers = list(self.encoder.layers)
        n = len(layers)
        groups = [{"params": list(layer.parameters()), "lr": lr * layer_decay ** (n - 1 - i)}
                  for i, layer in enumerate(layers)]
        seen = {id(p) for g in groups for p in g["params"]}
        groups.append({"params": [p for p in self.parameters() if id(p) not in seen],
                       "lr": lr * layer_decay ** n})
        return [g for g in groups if g["params"]]

    def _init_weights(self, module: nn.Module) -> None:
        if module is self:
            nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, features: torch.Tensor, valid: torch.Tensor,
                masked: torch.Tensor | None = None, start_s: torch.Tensor | None = None,
                *, self_only: bool = False, layers: bool = False
                ) -> torch.Tensor | list[torch.Tensor]:
        """features [B, S, K, D], valid/masked [B, S] -> contextualized segments [B, S, width].

        `self_only` lets each segment attend only to itself (no context: the capacity control
        of a probe); `layers` returns every layer's output [B, S, width], the last one normed.
        """
        c = self.config
        b, s, k, _ = features.shape
        if c.token_mode == "pool":
            x = self.proj(features.mean(2))  # [B, S, W]
        else:
            x = self.proj(features) + self.token_embed.weight[:k]  # [B, S, K, W]
        if masked is not None:
            m = masked.view(b, s, *([1] * (x.dim() - 2)))
            x = torch.where(m, self.mask_token.to(x.dtype), x)
        if c.position == "time" and start_s is not None:
            pos = sinusoid(start_s / c.time_scale, c.width)
        else:
            pos = sinusoid(torch.arange(s, device=x.device).expand(b, s), c.width)
        per = 1 if c.token_mode == "pool" else k  # sequence positions per segment
        if c.token_mode == "pool":
            x = x + pos.to(x.dtype)
        else:
            x = (x + pos[:, :, None].to(x.dtype)).reshape(b, s * k, -1)
        pad = (~valid)[:, :, None].expand(b, s, per).reshape(b, s * per)
        attn = None
        if self_only:  # True = may not attend: everything outside the own segment
            seg = torch.arange(s * per, device=x.device) // per
            attn = seg[:, None] != seg[None, :]
        outs = []
        for layer in self.encoder.layers:
            x = layer(x, src_mask=attn, src_key_padding_mask=pad)
            outs.append(x if per == 1 else x.view(b, s, k, -1).mean(2))
        outs[-1] = self.norm(outs[-1])
        return outs if layers else outs[-1]


AutoConfig.register(ContextualizerConfig.model_type, ContextualizerConfig)
AutoModel.register(ContextualizerConfig, Contextualizer)


def decay_groups(model: nn.Module, weight_decay: float, which: str = "weights") -> list[dict]:
    """AdamW's groups for pretraining (nanoGPT's `configure_optimizers`): decay on every
    parameter (`all`), or on matrices of 2+ dimensions only (`weights`): biases, norms, the
    mask token and embeddings are not shrunk to zero."""
    if which == "all":
        return [{"params": list(model.parameters()), "weight_decay": weight_decay}]
    named = list(model.named_parameters())
    flat = [p for n, p in named if p.ndim < 2 or "embed" in n]
    rest = [p for n, p in named if not (p.ndim < 2 or "embed" in n)]
    return [{"params": rest, "weight_decay": weight_decay}, {"params": flat, "weight_decay": 0.0}]


def load_contextualizer(path: str) -> Contextualizer:
    """A trained contextualizer from a local folder (or a hub id), with a one-line error naming
    the path and the reason instead of transformers' traceback."""
    import json
    import os

    from hiermovie.config import ConfigError

    looks_local = os.path.exists(path) or path.startswith((".", "/", "~")) or path.endswith("/")
    if looks_local:
        config = os.path.join(path, "config.json")
        if not os.path.isdir(path):
            raise ConfigError(f"contextualizer: {path}: no such folder")
        try:
            with open(config) as f:
                model_type = json.load(f).get("model_type")
        except (OSError, ValueError):
            raise ConfigError(f"contextualizer: {path}: not a contextualizer folder (no readable "
                             "config.json; pretrain-ctx writes one into OUT/contextualizer)"
                             ) from None
        if model_type != ContextualizerConfig.model_type:
            raise ConfigError(f"contextualizer: {path}: holds a {model_type!r} model, not a "
                             f"{ContextualizerConfig.model_type!r}")
    try:  # safetensors only: a pickled pytorch_model.bin could run code when loaded
        return Contextualizer.from_pretrained(path, use_safetensors=True)
    except OSError as e:
        raise ConfigError(f"contextualizer: {path}: cannot be loaded: "
                         f"{str(e).splitlines()[0][:160]} (only model.safetensors is read: "
                         "pickled weights are never loaded)") from None
