"""Running a contextualizer over clips: the one way every reader of its outputs does it."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Readout = Literal["last", "mean", "infill"]


def read_out(ctx: nn.Module, features: torch.Tensor, start_s: torch.Tensor | None,
             valid: torch.Tensor | None = None, *, self_only: bool = False,
             readout: Readout = "last") -> torch.Tensor:
    """Contextualized segments [B, S, W] (`infill`: [B, S, 2W]) of features [B, S, K, D].

    `start_s` [B, S] are the segments' start times: a model with time positions is read at
    the times it was trained on (index positions ignore them). `readout`: the last layer, the
    mean of the layers, or `infill`: the last layer beside each segment's output when the
    segment itself is masked, what the model infers of it from its neighbours (one extra pass
    per segment).
    """
    if valid is None:
        valid = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
    layers = ctx(features, valid, None, start_s, self_only=self_only, layers=True)
    h = torch.stack(layers).mean(0) if readout == "mean" else layers[-1]
    if readout == "infill":
        alone = torch.eye(features.shape[1], dtype=torch.bool, device=features.device)
        filled = [ctx(features, valid, alone[i].expand_as(valid), start_s,
                      self_only=self_only)[:, i] for i in range(features.shape[1])]
        h = torch.cat([h, torch.stack(filled, 1)], -1)
    return h
