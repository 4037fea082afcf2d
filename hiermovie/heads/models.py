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
