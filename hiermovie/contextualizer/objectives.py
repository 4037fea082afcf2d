"""Mask-prediction losses: predict each masked segment's own (frozen) input feature."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Loss = Literal["l2", "cosine", "infonce", "infonce_clip"]
Target = Literal["feature", "centered", "ema"]
TargetNorm = Literal["segment", "channel"]


def targets(features: torch.Tensor, valid: torch.Tensor | None = None,
            centered: bool = False, norm: TargetNorm = "segment") -> torch.Tensor:
    """[B, S, K, D] -> per-segment targets [B, S, D], never a path for gradients; normalised
    per segment over channels (`segment`, as MAE's norm_pix_loss) or standardised per channel
    over the batch's real segments (`channel`: every channel weighs the same in the loss).
    `centered`: the clip's mean feature (over its `valid` segments) is removed first, so what
    is shared by a clip (scene, cast) is not a target and a masked segment must be told from
    its clip-mates."""
    t = features.mean(2).detach()
    w = (torch.ones(t.shape[:2], device=t.device) if valid is None else valid.float())[..., None]
    if centered:
        t = t - (t * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp(min=1)
    if norm == "segment":
        return F.layer_norm(t, t.shape[-1:])
    n = w.sum().clamp(min=2)
    mean = (t * w).sum((0, 1)) / n
    std = (((t - mean) ** 2 * w).sum((0, 1)) / (n - 1)).sqrt()
    return (t - mean) / (std + 1e-6)


def teacher_targets(layers: list[torch.Tensor], top: int) -> torch.Tensor:
    """data2vec's targets: the mean of a teacher's top `top` layer outputs [B, S, W], each
    normalised first so no layer dominates, then normalised per segment. The teacher sees the
    whole clip, so a target is the segment *in its context*, not only its own pixels."""
    t = torch.stack([F.layer_norm(h.float(), h.shape[-1:]) for h in layers[-top:]]).mean(0)
    return F.layer_norm(t, t.shape[-1:]).detach()


def clip_infonce(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                 scored: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE at each `scored` segment [B, S] whose negatives are the other segments of its
    own clip: pred, target [B, S, D]. Whatever a clip's segments share (scene, cast) scores
    every candidate alike, so only what tells a segment from its clip-mates can answer."""
    p = F.normalize(pred.float(), dim=-1)
    t = F.normalize(target.float(), dim=-1)
    logits = torch.einsum("bsd,bud->bsu", p, t) / temperature
    logits = logits.masked_fill(~valid[:, None, :], float("-inf"))
    own = torch.arange(valid.shape[1], device=valid.device).expand_as(valid)
    return F.cross_entropy(logits[scored], own[scored])


def mask_loss(pred: torch.Tensor, target: torch.Tensor, kind: Loss = "l2",
              temperature: float = 0.1) -> torch.Tensor:
    """pred, target: [N, D] at the masked positions only (`infonce_clip`: `clip_infonce`)."""
    if kind == "l2":
        return (pred.float() - target.float()).pow(2).mean()
    if kind == "cosine":
        return (1 - F.cosine_similarity(pred.float(), target.float(), dim=-1)).mean()
    # InfoNCE (VideoBERT-style): the true feature against every other masked one in the batch
    p = F.normalize(pred.float(), dim=-1)
    t = F.normalize(target.float(), dim=-1)
    logits = p @ t.T / temperature
    return F.cross_entropy(logits, torch.arange(len(p), device=p.device))
