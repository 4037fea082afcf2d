"""One training loop for every head: minibatches of in-memory samples, Adam, seeded.

Heads of several seeds can train as one stacked model (`StackedMLP`): Adam's update is
elementwise and the members' losses are summed, so each member follows exactly the path it
would follow alone, with its own initialisation and its own data order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn


def fit(model: nn.Module, loss_fn: Callable[[torch.Tensor], torch.Tensor], n: int, *,
        epochs: int, lr: float, batch_size: int, seeds: Sequence[int] = (0,),
        params: Iterable | None = None, weight_decay: float = 1e-4, decoupled: bool = False,
        warmup_steps: int = 0, on_epoch: Callable[[int, float], None] | None = None
        ) -> nn.Module:
    """Train `model` on samples 0..n-1 for `epochs`.

    Each epoch, member m visits the samples in an order seeded by `seeds[m]`; `loss_fn` gets
    the indices [members, batch] and returns the loss summed over members. `params` may be
    optimizer parameter groups, each with its own absolute "lr" (warm-up scales them all).
    `on_epoch(epoch, mean loss)` runs after each epoch with the model in eval mode.
    Dropout draws from a generator seeded by `seeds[0]`; the caller's global RNG is untouched.
    """
    groups = list(params) if params is not None else list(model.parameters())
    opt_cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    opt = opt_cls(groups, lr=lr, weight_decay=weight_decay)
    base = [g["lr"] for g in opt.param_groups]
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    step = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seeds[0]))
        model.train()
        for epoch in range(epochs):
            orders = torch.stack([torch.randperm(n, generator=g) for g in gens])
            total, batches = 0.0, 0
            for i in range(0, n, batch_size):
                if warmup_steps:
                    scale = min(1.0, (step + 1) / warmup_steps)
                    for g, b in zip(opt.param_groups, base, strict=True):
                        g["lr"] = b * scale
                loss = loss_fn(orders[:, i:i + batch_size])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, batches, step = total + loss.item(), batches + 1, step + 1
            if on_epoch is not None:
                model.eval()
                on_epoch(epoch + 1, total / max(1, batches * len(gens)))
                model.train()
    return model.eval()


class StackedMLP(nn.Module):
    """`members` independent heads in one module: x [M, B, in] -> [M, B, out].

    kind "mlp": in -> hidden -> out with ReLU and dropout (VidSitu's heads); "linear": a
    linear probe. Member m is initialised as `nn.Linear` would be, from `seeds[m]`.
    """

    def __init__(self, seeds: Sequence[int], in_dim: int, hidden: int, out_dim: int,
                 kind: str = "mlp", dropout: float = 0.1) -> None:
        super().__init__()
        dims = [in_dim, out_dim] if kind == "linear" else [in_dim, hidden, out_dim]
        gens = [torch.Generator().manual_seed(int(s) * 7919 + 17) for s in seeds]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            bound = 1 / math.sqrt(a)
            self.weights.append(nn.Parameter(torch.stack([
                (torch.rand(a, b, generator=g) * 2 - 1) * bound for g in gens])))
            self.biases.append(nn.Parameter(torch.stack([
                (torch.rand(1, b, generator=g) * 2 - 1) * bound for g in gens])))
        self.dropout = dropout

    @property
    def members(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(shape[0], -1, shape[-1])
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = nn.functional.dropout(torch.relu(x), self.dropout, self.training)
        return x.reshape(*shape[:-1], x.shape[-1])
