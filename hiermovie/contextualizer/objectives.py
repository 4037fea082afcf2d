"""Mask-prediction losses: predict each masked segment's own (frozen) input feature."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Loss = Literal["l2", "cosine", "infonce"]


def targets(features: torch.Tensor) -> torch.Tensor:
    """[B, S, K, D] -> per-segment targets [B, S, D], normalised per segment (as MAE's
    norm_pix_loss), and never a path for gradients."""
    t = features.mean(2).detach()
    return F.layer_norm(t, t.shape[-1:])


def mask_loss(pred: torch.Tensor, target: torch.Tensor, kind: Loss = "l2",
              temperature: float = 0.1) -> torch.Tensor:
    """pred, target: [N, D] at the masked positions only."""
    if kind == "l2":
        return (pred.float() - target.float()).pow(2).mean()
    if kind == "cosine":
        return (1 - F.cosine_similarity(pred.float(), target.float(), dim=-1)).mean()
    # InfoNCE (VideoBERT-style): the true feature against every other masked one in the batch
    p = F.normalize(pred.float(), dim=-1)
    t = F.normalize(target.float(), dim=-1)
    logits = p @ t.T / temperature
    return F.cross_entropy(logits, torch.arange(len(p), device=p.device))
