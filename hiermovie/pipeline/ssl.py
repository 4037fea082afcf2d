"""Self-supervised objectives for the backbone: CVRL (InfoNCE) and rho-BYOL.

Both see a batch of B videos x n clips. CVRL pulls a video's clips together and pushes other
videos' clips away; rho-BYOL predicts a momentum target network's embedding of the video's
other clips, with no negatives.
"""

from __future__ import annotations

import copy
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from hiermovie.config import ConfigError

Objective = Literal["cvrl", "rho_byol"]


def mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, dim_out))


def gather(z: torch.Tensor) -> torch.Tensor:
    """All ranks' rows, differentiably, so every rank's clips are every rank's negatives.

    Every rank computes the same global loss; all_gather's backward sums the gradient that
    reaches each rank's own rows, and DDP's gradient average divides by the world size again,
    which leaves exactly the gradient of the global loss.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return z
    if not z.requires_grad:
        parts = [torch.empty_like(z) for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather(parts, z)
        return torch.cat(parts)
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(z))


def info_nce(z: torch.Tensor, groups: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE over [B, n, P] clip embeddings with group ids [B, n].

    A clip's positives are the other clips of its group (e.g. its video, including another
    sample of the same video, which must not count as a negative); everything else is a
    negative; group -1 is positive to nothing (static negatives). With n = 2 and one sample per
    group this is SimCLR/CVRL's NT-Xent.
    """
    flat = F.normalize(z.reshape(-1, z.shape[-1]).float(), dim=-1)
    owner = groups.reshape(-1)
    self_ = torch.eye(len(owner), dtype=torch.bool, device=z.device)
    logits = (flat @ flat.T / temperature).masked_fill(self_, float("-inf"))
    positive = (owner[:, None] == owner[None, :]) & ~self_ & (owner[:, None] >= 0)
    return -logits.log_softmax(dim=1)[positive].mean()


def byol_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over pairs i != j of clips of one video of 2 - 2 cos(pred_i, target_j)."""
    b, n, _ = pred.shape
    p = F.normalize(pred.float(), dim=-1)
    t = F.normalize(target.float(), dim=-1)
    cos = torch.einsum("bip,bjp->bij", p, t)
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=pred.device)
    return (2 - 2 * cos[:, off_diagonal]).mean()


def momentum_at(step: int, total: int, base: float) -> float:
    """BYOL's schedule: from `base` up to 1 along a cosine."""
    return 1 - (1 - base) * (math.cos(math.pi * step / max(1, total)) + 1) / 2


class ClipLearner(nn.Module):
    """A backbone plus projection head (and for rho-BYOL predictor and momentum target)."""

    def __init__(self, backbone: nn.Module, dim: int, objective: Objective, proj_dim: int = 128,
                 hidden: int = 512, temperature: float = 0.1) -> None:
        super().__init__()
        if objective not in ("cvrl", "rho_byol"):
            raise ConfigError(f"objective: must be 'cvrl' or 'rho_byol', got {objective!r}")
        self.objective, self.temperature = objective, temperature
        self.backbone = backbone
        self.projector = mlp(dim, hidden, proj_dim)
        if objective == "rho_byol":
            self.predictor = mlp(proj_dim, hidden, proj_dim)
            self.target = copy.deepcopy(nn.ModuleDict(
                {"backbone": backbone, "projector": self.projector})).requires_grad_(False)

    @staticmethod
    def _embed(backbone: nn.Module, projector: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return projector(backbone(x).float().mean(dim=(2, 3, 4)))

    def forward(self, clips: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Loss of normalised clips [B, n, 3, T, H, W] with group ids [B, n] (see info_nce)."""
        if self.objective == "rho_byol":  # no negatives: drop static ones
            keep = (groups >= 0).all(dim=0)
            clips, groups = clips[:, keep], groups[:, keep]
        b, n = clips.shape[:2]
        x = clips.flatten(0, 1)
        z = self._embed(self.backbone, self.projector, x)
        if self.objective == "cvrl":
            return info_nce(gather(z).view(-1, n, z.shape[-1]), gather(groups),
                            self.temperature)
        with torch.no_grad():
            t = self._embed(self.target["backbone"], self.target["projector"], x)
        return byol_loss(self.predictor(z).view(b, n, -1), t.view(b, n, -1))

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        if self.objective != "rho_byol":
            return
        online = list(self.backbone.parameters()) + list(self.projector.parameters())
        for t, o in zip(self.target.parameters(), online, strict=True):
            t.lerp_(o, 1 - momentum)
