"""Task heads on per-event features, sized as VidSitu's (scaled to the feature width)."""

from __future__ import annotations

import torch
from torch import nn


def mlp_or_linear(in_dim: int, classes: int, kind: str = "mlp") -> nn.Module:
    """VidSitu's verb head is D -> D/2 -> classes; `linear` is the linear-evaluation probe."""
    if kind == "linear":
        return nn.Linear(in_dim, classes)
    return nn.Sequential(nn.Linear(in_dim, in_dim // 2), nn.ReLU(), nn.Dropout(0.1),
                         nn.Linear(in_dim // 2, classes))


class RelationHead(nn.Module):
    """Classifies the relation of event i to Ev3 from the two events' features."""

    def __init__(self, in_dim: int, classes: int = 4, kind: str = "mlp") -> None:
        super().__init__()
        self.net = mlp_or_linear(2 * in_dim, classes, kind)

    def forward(self, ev: torch.Tensor, ev3: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([ev, ev3], dim=-1))


def train_classifier(model: nn.Module, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor,
                     *, epochs: int, lr: float, batch_size: int, seed: int,
                     weight_decay: float = 1e-4) -> nn.Module:
    """Cross-entropy training with Adam on in-memory tensors; seeded."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(labels)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            loss = nn.functional.cross_entropy(model(*(x[idx] for x in inputs)), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


class ClipModel(nn.Module):
    """Verb and relation heads over a clip's events, optionally through a contextualizer that
    is fine-tuned with them. Each event is represented by its own (standardised) feature,
    next to its contextualized one when there is a contextualizer. The contextualizer sees the
    first `ctx_dim` channels (the rest: features fused from another store)."""

    def __init__(self, in_dim: int, verbs: int, relations: int, ctx: nn.Module | None,
                 ctx_width: int, mean: torch.Tensor, std: torch.Tensor, kind: str = "mlp",
                 pairs: tuple[int, ...] = (0, 1, 3, 4), ctx_dim: int = 0) -> None:
        super().__init__()
        self.ctx, self.ctx_dim = ctx, ctx_dim or in_dim
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        width = in_dim + (ctx_width if ctx is not None else 0)
        self.verb = mlp_or_linear(width, verbs, kind)
        self.rel = RelationHead(width, relations, kind)
        self.pairs = list(pairs)

    def events(self, feats: torch.Tensor) -> torch.Tensor:
        """[B, S, K, D] -> [B, S, F]."""
        own = (feats.mean(2) - self.mean) / self.std
        if self.ctx is None:
            return own
        valid = torch.ones(feats.shape[:2], dtype=torch.bool, device=feats.device)
        return torch.cat([own, self.ctx(feats[..., :self.ctx_dim], valid)], dim=-1)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Verb logits [B, S, V] and relation logits [B, len(pairs), R] (pairs vs event 3)."""
        ev = self.events(feats)
        centre = ev[:, 2:3].expand(-1, len(self.pairs), -1)
        return self.verb(ev), self.rel(ev[:, self.pairs], centre)


def train_clip_model(model: ClipModel, feats: torch.Tensor, verbs: torch.Tensor,
                     relations: torch.Tensor, *, epochs: int, lr: float, batch_size: int,
                     seed: int, ctx_lr_scale: float = 0.3) -> ClipModel:
    """Joint cross-entropy on verbs (every event) and relations (every pair)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    ctx_params = list(model.ctx.parameters()) if model.ctx is not None else []
    ids = {id(p) for p in ctx_params}
    groups = [{"params": [p for p in model.parameters() if id(p) not in ids], "lr": lr}]
    if ctx_params:
        groups.append({"params": ctx_params, "lr": lr * ctx_lr_scale})
    opt = torch.optim.Adam(groups, weight_decay=1e-4)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(feats), generator=g)
        for i in range(0, len(feats), batch_size):
            idx = order[i:i + batch_size]
            vlog, rlog = model(feats[idx])
            loss = (nn.functional.cross_entropy(vlog.flatten(0, 1), verbs[idx].flatten())
                    + nn.functional.cross_entropy(rlog.flatten(0, 1), relations[idx].flatten()))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
