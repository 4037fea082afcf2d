"""How a probe row is fitted, in two kinds with one interface: `FrozenRow` trains heads on event
features computed once; `FinetunedRow` trains a copy of the row's contextualizer with them.

`select` trains every candidate learning rate (and, through the checkpoints it records, every
candidate epoch count) on each seed's label subset and returns the checkpoints; `choose` picks
one (lr, epochs) from them. `role_events` gives the event features the role decoder trains and
generates from: the frozen features, or those of the fine-tuned run chosen on the verb and
relation selection score (the role decoder has no selection of its own).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hiermovie.workflows.probe.rows import Row
from hiermovie.workflows.probe.train import (
    Checkpoint,
    Context,
    Split,
    fit_finetuned,
    fit_frozen,
    frozen_with,
)

Checkpoints = dict[tuple[float, int], Checkpoint]


class FrozenRow:
    """Heads on fixed event features; all seeds of one learning rate train as one stacked run."""

    def __init__(self, cx: Context, row: Row, y: Split, sel: Split, val: Split,
                 on_fit: Callable[[], None]) -> None:
        self.cx, self.row, self.y, self.sel, self.on_fit = cx, row, y, sel, on_fit
        self.train_ev, self.sel_ev, self.val_ev = (cx.frozen(row, s) for s in (y, sel, val))

    def select(self, subsets: torch.Tensor, lrs: list[float]) -> Checkpoints:
        ck: Checkpoints = {}
        seeds = list(range(len(subsets)))
        for lr in lrs:
            fit_frozen(self.cx, self.row, self.train_ev, self.y, subsets=subsets,
                       sel_ev=self.sel_ev, sel=self.sel, val_ev=self.val_ev, lr=lr,
                       seeds=seeds, ck=ck)
            self.on_fit()
        return ck

    def role_events(self, seed: int, clips: torch.Tensor, lr: float, epochs: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.train_ev[clips], self.val_ev

    @staticmethod
    def fits(seeds: int, lrs: int) -> int:
        """Progress steps of `select`."""
        return lrs


class FinetunedRow:
    """A copy of the row's contextualizer trained with the heads, one run per seed and rate."""

    def __init__(self, cx: Context, row: Row, y: Split, sel: Split, val: Split,
                 on_fit: Callable[[], None]) -> None:
        self.cx, self.row, self.y, self.sel, self.val, self.on_fit = cx, row, y, sel, val, on_fit

    def select(self, subsets: torch.Tensor, lrs: list[float]) -> Checkpoints:
        ck: Checkpoints = {}
        for lr in lrs:
            for seed, subset in enumerate(subsets):
                fit_finetuned(self.cx, self.row, self.y, subset=subset, sel=self.sel,
                              val=self.val, lr=lr, seed=seed, ck=ck)
                self.on_fit()
        return ck

    def role_events(self, seed: int, clips: torch.Tensor, lr: float, epochs: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The chosen run trained again (deterministic), read without dropout."""
        model = fit_finetuned(self.cx, self.row, self.y, subset=clips, sel=self.sel,
                              val=self.val, lr=lr, seed=seed, ck={}, epochs=epochs)
        return (frozen_with(self.cx, self.row, model.ctx, self.y[clips]),
                frozen_with(self.cx, self.row, model.ctx, self.val))

    @staticmethod
    def fits(seeds: int, lrs: int) -> int:
        return seeds * lrs


def trainer(row: Row) -> type[FrozenRow] | type[FinetunedRow]:
    return FinetunedRow if row.mode == "finetune" else FrozenRow
