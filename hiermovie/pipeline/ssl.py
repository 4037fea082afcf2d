"""Level 1's training objectives: CVRL (InfoNCE), rho-BYOL, MoDist and supervised.

All see a batch of B videos x n clips. CVRL pulls a video's clips together and pushes other
videos' clips away; rho-BYOL predicts a momentum target network's embedding of the video's
other clips, with no negatives. MoDist (Xiao et al., MaCLR) adds a motion pathway over optical
flow and a cross-modal InfoNCE between it and the RGB pathway, so the RGB features must predict
what moves; flow is needed only while training. Supervised classifies each clip's label (the
paper's "Supervised Training (K400)" level 1).
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from hiermovie.config import ConfigError

Objective = Literal["cvrl", "rho_byol", "modist", "supervised"]
OBJECTIVES = ("cvrl", "rho_byol", "modist", "supervised")


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


def cross_nce(a: torch.Tensor, b: torch.Tensor, groups: torch.Tensor,
              temperature: float) -> torch.Tensor:
    """Symmetric cross-modal InfoNCE between two modalities' embeddings [N, P] of the same N
    clips (MSCL's form: each RGB clip queries the flow keys, each flow clip the RGB keys).

    A clip's positives in the other modality are itself and the other clips of its group;
    every other clip is a negative. A static negative (group -1) is positive to its own flow
    only, which shows no motion: RGB features must tell it from its moving twin.
    """
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    owner = groups.reshape(-1)
    same = (owner[:, None] == owner[None, :]) & (owner[:, None] >= 0)
    positive = same | torch.eye(len(owner), dtype=torch.bool, device=a.device)
    logits = a @ b.T / temperature
    return -(logits.log_softmax(1)[positive].mean() + logits.T.log_softmax(1)[positive].mean()) / 2


class MotionPathway(nn.Module):
    """MoDist's motion pathway: a narrow network with temporal kernel 1 everywhere (per-frame
    2D convolutions, as MaCLR's `DualNet`) over 3-channel flow images (dx, dy, magnitude)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        chans = [3, width, width * 2, width * 4, width * 4]
        layers: list[nn.Module] = []
        for i in range(4):
            k = 5 if i == 0 else 3
            layers += [nn.Conv3d(chans[i], chans[i + 1], (1, k, k), (1, 2, 2), (0, k // 2, k // 2),
                                 bias=False), nn.BatchNorm3d(chans[i + 1]), nn.ReLU(inplace=True)]
        self.body, self.dim = nn.Sequential(*layers), chans[-1]

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        return self.body(flow)


def byol_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over pairs i != j of clips of one video of 2 - 2 cos(pred_i, target_j)."""
    b, n, _ = pred.shape
    p = F.normalize(pred.float(), dim=-1)
    t = F.normalize(target.float(), dim=-1)
    cos = torch.einsum("bip,bjp->bij", p, t)
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=pred.device)
    return (2 - 2 * cos[:, off_diagonal]).mean()


class ClipLearner(nn.Module):
    """A backbone plus what its objective trains beside it: a projection head (and for
    rho-BYOL a predictor and momentum target, for MoDist a motion pathway and its head, for
    supervised a linear classifier). Only `backbone` is kept after training."""

    def __init__(self, backbone: nn.Module, dim: int, objective: Objective, proj_dim: int = 128,
                 hidden: int = 512, temperature: float = 0.1, *, classes: int = 0,
                 flow_weight: float = 1.0, motion_width: int = 16) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ConfigError(f"objective: must be one of {', '.join(OBJECTIVES)}, got "
                              f"{objective!r}")
        if objective == "supervised" and classes < 2:
            raise ConfigError("objective supervised: needs labelled videos of at least 2 "
                              "classes (e.g. --input kinetics:ROOT)")
        self.objective, self.temperature, self.flow_weight = objective, temperature, flow_weight
        self.backbone = backbone
        if objective == "supervised":
            self.classifier = nn.Linear(dim, classes)
            return
        self.projector = mlp(dim, hidden, proj_dim)
        if objective == "rho_byol":
            self.predictor = mlp(proj_dim, hidden, proj_dim)
            self.target = copy.deepcopy(nn.ModuleDict(
                {"backbone": backbone, "projector": self.projector})).requires_grad_(False)
        if objective == "modist":
            self.motion = MotionPathway(motion_width)
            self.motion_projector = mlp(self.motion.dim, hidden, proj_dim)

    @property
    def uses_flow(self) -> bool:
        return self.objective == "modist"

    @staticmethod
    def _embed(backbone: nn.Module, projector: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return projector(backbone(x).float().mean(dim=(2, 3, 4)))

    def forward(self, clips: torch.Tensor, groups: torch.Tensor,
                flow: torch.Tensor | None = None, labels: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Loss of normalised clips [B, n, 3, T, H, W] with group ids [B, n] (see info_nce);
        MoDist also reads their flow images [B, n, 3, T, H, W], supervised the videos'
        labels [B]."""
        if self.objective in ("rho_byol", "supervised"):  # no negatives: drop static ones
            keep = (groups >= 0).all(dim=0)
            clips, groups = clips[:, keep], groups[:, keep]
        b, n = clips.shape[:2]
        x = clips.flatten(0, 1)
        if self.objective == "supervised":
            logits = self.classifier(self.backbone(x).float().mean(dim=(2, 3, 4)))
            return F.cross_entropy(logits, labels.repeat_interleave(n))
        z = self._embed(self.backbone, self.projector, x)
        if self.objective in ("cvrl", "modist"):
            zg, g = gather(z), gather(groups)
            loss = info_nce(zg.view(-1, n, z.shape[-1]), g, self.temperature)
            if self.objective == "modist" and self.flow_weight:
                f = self._embed(self.motion, self.motion_projector, flow.flatten(0, 1))
                loss = loss + self.flow_weight * cross_nce(zg, gather(f), g, self.temperature)
            return loss
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
