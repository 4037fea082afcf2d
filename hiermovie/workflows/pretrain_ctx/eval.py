"""pretrain-ctx's measurements of a model: its loss on a batch (on the job's device and
precision) and the validation loss (the collapse check is the contextualizer's own:
`contextualizer.collapse`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def loss_on(model: Callable, batch: dict[str, Any], device: torch.device,
            generator: torch.Generator | None) -> tuple[torch.Tensor, int]:
    """The objective's loss on one batch (`contextualizer.predictors`: the model's forward pass
    is its loss) and how many predictions it averages, in bf16 on GPU."""
    on = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return model(on, generator)


@torch.no_grad()
def evaluate(model: nn.Module, val: Any, collate: Any, batch_size: int, device: torch.device,
             mean_target: torch.Tensor | None = None) -> float:
    """Validation loss with fixed masks; with `mean_target`, the loss of predicting it."""
    model.eval()
    total, n = 0.0, 0
    g = torch.Generator().manual_seed(12345)
    step = model if mean_target is None else (
        lambda batch, g: model.baseline(batch, g, mean_target))
    for i in range(0, len(val), batch_size):
        batch = collate([val[j] for j in range(i, min(i + batch_size, len(val)))])
        loss, k = loss_on(step, batch, device, g)
        total, n = total + loss.item() * k, n + k
    model.train()
    return total / max(n, 1)
