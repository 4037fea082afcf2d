"""How a probe row is fitted, in two kinds with one interface: `FrozenRow` trains heads on event
features computed once (all seeds of one learning rate as one stacked model); `FinetunedRow`
trains a copy of the row's contextualizer with them, one seed at a time.

`select` trains every candidate learning rate on each seed's label subset; every `eval_every`
epochs a checkpoint records the selection score and the validation predictions, and `choose`
picks the (lr, epochs) with the best mean selection score: chosen on held-out training clips
(the selection clips), never on the validation clips. `role_events` gives the event features
the role decoder trains and generates from: the frozen features, or those of the fine-tuned run
so chosen (the role decoder has no selection of its own).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from hiermovie.datasets.labelled import Clips
from hiermovie.heads.fit import fit
from hiermovie.heads.models import VidSituHeads, head_loss
from hiermovie.workflows.probe.config import FinetuneConfig, HeadSchedule
from hiermovie.workflows.probe.rows import EventFeatures, Row


@dataclass
class Checkpoint:
    score: list[float] = field(default_factory=list)  # selection score, per seed
    verb_top: list[torch.Tensor] = field(default_factory=list)  # [Nv, 5, k] per seed
    relation: list[torch.Tensor] = field(default_factory=list)  # [Nv, 4] per seed


Checkpoints = dict[tuple[float, int], Checkpoint]


@dataclass(frozen=True)
class HeadShape:
    """The VidSitu heads every row trains: the same hidden width for every row."""

    hidden: int
    verbs: int
    relations: int
    kind: str  # mlp or linear

    def build(self, seeds: list[int], in_dim: int) -> VidSituHeads:
        """One set of heads per seed, stacked."""
        return VidSituHeads(seeds, in_dim, self.hidden, self.verbs, self.relations, self.kind)


@dataclass
class Fitting:
    """What every fit of one probe run shares: small typed values, not the run's config."""

    schedule: HeadSchedule
    events: EventFeatures
    heads: HeadShape
    tasks: list[str]
    finetune: FinetuneConfig
    on_epoch: Callable[[str, int, float], None] = lambda desc, epoch, loss: None


def selection_score(vlog: torch.Tensor, rlog: torch.Tensor, sel: Clips,
                    tasks: list[str]) -> torch.Tensor:
    """Per member: the mean of verb Acc@1 and relation mean (per-class) accuracy."""
    parts = []
    if "verb" in tasks:
        parts.append((vlog.argmax(-1) == sel.verbs).float().mean((1, 2)))
    if "relation" in tasks:
        hit = (rlog.argmax(-1) == sel.relations).float().flatten(1)
        gold = sel.relations.flatten()
        per_class = [hit[:, gold == c].mean(1) for c in gold.unique()]
        parts.append(torch.stack(per_class).mean(0))
    return torch.stack(parts).mean(0)


def choose(ck: Checkpoints) -> tuple[tuple[float, int], Checkpoint]:
    """The (lr, epochs) with the best mean selection score (ties: fewer epochs, lower lr)."""
    key = max(ck, key=lambda k: (sum(ck[k].score) / len(ck[k].score), -k[1], -k[0]))
    return key, ck[key]


class _Row:
    """A row fitted on the labelled `pool`, chosen on `select`, scored on `valid`."""

    def __init__(self, f: Fitting, row: Row, pool: Clips, select: Clips, valid: Clips,
                 on_fit: Callable[[], None]) -> None:
        self.f, self.row, self.pool, self.select, self.valid = f, row, pool, select, valid
        self.on_fit = on_fit

    def _record(self, ck: Checkpoints, key: tuple[float, int],
                heads: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                select_ev: torch.Tensor, valid_ev: torch.Tensor) -> None:
        with torch.no_grad():
            vs, rs = heads(select_ev)
            vv, rv = heads(valid_ev)
        c = ck.setdefault(key, Checkpoint())
        c.score += selection_score(vs, rs, self.select, self.f.tasks).tolist()
        c.verb_top += list(vv.topk(min(5, vv.shape[-1]), dim=-1).indices)
        c.relation += list(rv.argmax(-1))


class FrozenRow(_Row):
    """Heads on fixed event features; all seeds of one learning rate train as one stacked run."""

    def __init__(self, f: Fitting, row: Row, pool: Clips, select: Clips, valid: Clips,
                 on_fit: Callable[[], None]) -> None:
        super().__init__(f, row, pool, select, valid, on_fit)
        self.pool_ev, self.select_ev, self.valid_ev = (
            f.events.frozen(row, row.ctx, c) for c in (pool, select, valid))

    def select_runs(self, subsets: torch.Tensor) -> Checkpoints:
        ck: Checkpoints = {}
        for lr in self.f.schedule.lrs:
            self._fit(subsets, lr, list(range(len(subsets))), ck)
            self.on_fit()
        return ck

    def _fit(self, subsets: torch.Tensor, lr: float, seeds: list[int], ck: Checkpoints
             ) -> VidSituHeads:
        """All seeds at once; subsets [M, n] index the pool."""
        sched, tasks, pool_ev, y = self.f.schedule, self.f.tasks, self.pool_ev, self.pool
        heads, m = self.f.heads.build(seeds, pool_ev.shape[-1]), len(seeds)

        def loss(idx: torch.Tensor) -> torch.Tensor:
            clips = subsets.gather(1, idx)
            vl, rl = heads(pool_ev[clips])
            return head_loss(vl, rl, y.verbs[clips], y.relations[clips], tasks)

        def on_epoch(epoch: int, value: float) -> None:
            self.f.on_epoch(f"{self.row.name} lr={lr:g}", epoch, value)
            if sched.checkpoint_at(epoch):
                self._record(ck, (lr, epoch), heads, self.select_ev[None].expand(m, -1, -1, -1),
                             self.valid_ev[None].expand(m, -1, -1, -1))

        return fit(heads, loss, subsets.shape[1], epochs=sched.epochs, lr=lr,
                   batch_size=sched.batch_size, seeds=seeds, precision=sched.precision,
                   on_epoch=on_epoch)

    def role_events(self, seed: int, clips: torch.Tensor, lr: float, epochs: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pool_ev[clips], self.valid_ev

    @staticmethod
    def fits(seeds: int, lrs: int) -> int:
        """Progress steps of `select_runs`."""
        return lrs


class Finetuned(nn.Module):
    def __init__(self, ctx: nn.Module, heads: VidSituHeads) -> None:
        super().__init__()
        self.ctx, self.heads = ctx, heads

    def param_groups(self, lr: float, finetune: FinetuneConfig) -> list[dict]:
        """Heads at `lr`; the contextualizer at lr * ctx_lr_scale, decayed layer by layer."""
        return [{"params": list(self.heads.parameters()), "lr": lr},
                *self.ctx.layer_groups(lr * finetune.ctx_lr_scale, finetune.layer_decay)]


class FinetunedRow(_Row):
    """A copy of the row's contextualizer trained with the heads, one run per seed and rate."""

    def select_runs(self, subsets: torch.Tensor) -> Checkpoints:
        ck: Checkpoints = {}
        for lr in self.f.schedule.lrs:
            for seed, subset in enumerate(subsets):
                self._fit(subset, lr, seed, ck)
                self.on_fit()
        return ck

    def _fit(self, subset: torch.Tensor, lr: float, seed: int, ck: Checkpoints,
             epochs: int | None = None) -> Finetuned:
        """One seed: a copy of the row's contextualizer trained with the heads on `subset`."""
        f, sched, row, y = self.f, self.f.schedule, self.row, self.pool
        width = f.events(row, row.ctx, y.features[:1], y.start_s[:1]).shape[-1]
        model = Finetuned(copy.deepcopy(row.ctx), f.heads.build([seed], width))

        def loss(idx: torch.Tensor) -> torch.Tensor:
            clips = y[subset[idx[0]]]
            vl, rl = model.heads(f.events(row, model.ctx, clips.features, clips.start_s)[None])
            return head_loss(vl, rl, clips.verbs[None], clips.relations[None], f.tasks)

        def on_epoch(epoch: int, value: float) -> None:
            f.on_epoch(f"{row.name} lr={lr:g} seed={seed}", epoch, value)
            if sched.checkpoint_at(epoch):
                self._record(ck, (lr, epoch), model.heads,
                             f.events.frozen(row, model.ctx, self.select)[None],
                             f.events.frozen(row, model.ctx, self.valid)[None])

        steps_per_epoch = -(-len(subset) // sched.batch_size)
        return fit(model, loss, len(subset), epochs=epochs or sched.epochs, lr=lr,
                   batch_size=sched.batch_size, seeds=[seed],
                   params=model.param_groups(lr, f.finetune),
                   warmup_steps=round(f.finetune.warmup_epochs * steps_per_epoch),
                   precision=sched.precision, on_epoch=on_epoch)

    def role_events(self, seed: int, clips: torch.Tensor, lr: float, epochs: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The chosen run trained again (deterministic), read without dropout."""
        model = self._fit(clips, lr, seed, ck={}, epochs=epochs)
        return (self.f.events.frozen(self.row, model.ctx, self.pool[clips]),
                self.f.events.frozen(self.row, model.ctx, self.valid))

    @staticmethod
    def fits(seeds: int, lrs: int) -> int:
        return seeds * lrs


def trainer(row: Row) -> type[FrozenRow] | type[FinetunedRow]:
    return FinetunedRow if row.mode == "finetune" else FrozenRow
