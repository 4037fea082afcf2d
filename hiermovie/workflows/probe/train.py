"""Training one row's verb and relation heads, with its learning rate and epochs chosen on
held-out training clips (the selection clips), never on the validation clips.

Frozen rows read fixed event features, so all seeds train at once as one stacked model.
Fine-tuned rows train a copy of the contextualizer with the heads, one seed at a time.
Every `eval_every` epochs a checkpoint records the selection score and the validation
predictions; the row's result is the checkpoint with the best mean selection score.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from hiermovie.heads.fit import fit
from hiermovie.heads.models import VidSituHeads, head_loss
from hiermovie.workflows.probe.config import VidSituProbeConfig
from hiermovie.workflows.probe.rows import Row, events


@dataclass
class Split:
    raw: torch.Tensor  # [N, 5, K, D] backbone features
    start_s: torch.Tensor  # [N, 5] the events' start times (a time-position model reads them)
    verbs: torch.Tensor | None = None  # [N, 5] training verb ids (training splits only)
    relations: torch.Tensor | None = None  # [N, 4] relation ids of Ev1, Ev2, Ev4, Ev5 vs Ev3

    def __getitem__(self, idx: slice | torch.Tensor) -> Split:
        v, r = self.verbs, self.relations
        return Split(self.raw[idx], self.start_s[idx], None if v is None else v[idx],
                     None if r is None else r[idx])

    def __len__(self) -> int:
        return len(self.raw)


@dataclass
class Checkpoint:
    score: list[float] = field(default_factory=list)  # selection score, per seed
    verb_top: list[torch.Tensor] = field(default_factory=list)  # [Nv, 5, k] per seed
    relation: list[torch.Tensor] = field(default_factory=list)  # [Nv, 4] per seed


@dataclass
class Context:
    """What every fit of a probe run shares."""

    cfg: VidSituProbeConfig
    mean: torch.Tensor
    std: torch.Tensor
    ctx_dim: int
    hidden: int
    verbs: int
    relations: int
    on_epoch: Callable[[str, int, float], None] = lambda desc, epoch, loss: None

    def events(self, row: Row, ctx: nn.Module | None, clips: Split) -> torch.Tensor:
        f = self.cfg.finetune
        return events(clips.raw, clips.start_s, row, ctx, self.mean, self.std, self.ctx_dim,
                      f.readout, f.concat_own)

    def frozen(self, row: Row, clips: Split) -> torch.Tensor:
        return frozen_with(self, row, row.ctx, clips)

    def heads(self, seeds: list[int], in_dim: int) -> VidSituHeads:
        return VidSituHeads(seeds, in_dim, self.hidden, self.verbs, self.relations,
                            self.cfg.head)


def selection_score(vlog: torch.Tensor, rlog: torch.Tensor, sel: Split,
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


def _record(ck: dict, key: tuple[float, int], vlog_sel: torch.Tensor, rlog_sel: torch.Tensor,
            vlog_val: torch.Tensor, rlog_val: torch.Tensor, sel: Split, tasks: list[str]) -> None:
    c = ck.setdefault(key, Checkpoint())
    c.score += selection_score(vlog_sel, rlog_sel, sel, tasks).tolist()
    k = min(5, vlog_val.shape[-1])
    c.verb_top += list(vlog_val.topk(k, dim=-1).indices)
    c.relation += list(rlog_val.argmax(-1))


def fit_frozen(cx: Context, row: Row, tr: torch.Tensor, y: Split, subsets: torch.Tensor,
               sel_ev: torch.Tensor, sel: Split, val_ev: torch.Tensor, lr: float,
               seeds: list[int], ck: dict, epochs: int | None = None) -> VidSituHeads:
    """All seeds at once on fixed event features `tr` [N, 5, F]; subsets [M, n] index `tr`."""
    cfg = cx.cfg
    heads = cx.heads(seeds, tr.shape[-1])
    m = len(seeds)

    def loss(idx: torch.Tensor) -> torch.Tensor:
        clips = subsets.gather(1, idx)
        vl, rl = heads(tr[clips])
        return head_loss(vl, rl, y.verbs[clips], y.relations[clips], cfg.tasks)

    def on_epoch(epoch: int, value: float) -> None:
        cx.on_epoch(f"{row.name} lr={lr:g}", epoch, value)
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            with torch.no_grad():
                vs, rs = heads(sel_ev[None].expand(m, -1, -1, -1))
                vv, rv = heads(val_ev[None].expand(m, -1, -1, -1))
            _record(ck, (lr, epoch), vs, rs, vv, rv, sel, cfg.tasks)

    return fit(heads, loss, subsets.shape[1], epochs=epochs or cfg.epochs, lr=lr,
               batch_size=cfg.batch_size, seeds=seeds, precision=cfg.precision,
               on_epoch=on_epoch)


class Finetuned(nn.Module):
    def __init__(self, ctx: nn.Module, heads: VidSituHeads) -> None:
        super().__init__()
        self.ctx, self.heads = ctx, heads


def _groups(model: Finetuned, lr: float, cfg: VidSituProbeConfig) -> list[dict]:
    """Heads at `lr`; the contextualizer at lr * ctx_lr_scale, decayed layer by layer."""
    f = cfg.finetune
    return [{"params": list(model.heads.parameters()), "lr": lr},
            *model.ctx.layer_groups(lr * f.ctx_lr_scale, f.layer_decay)]


def fit_finetuned(cx: Context, row: Row, y: Split, subset: torch.Tensor, sel: Split,
                  val: Split, lr: float, seed: int, ck: dict, epochs: int | None = None
                  ) -> Finetuned:
    """One seed: a copy of the row's contextualizer trained with the heads on `subset`."""
    cfg = cx.cfg
    width = cx.events(row, row.ctx, y[:1]).shape[-1]
    model = Finetuned(copy.deepcopy(row.ctx), cx.heads([seed], width))

    def loss(idx: torch.Tensor) -> torch.Tensor:
        clips = subset[idx[0]]
        vl, rl = model.heads(cx.events(row, model.ctx, y[clips])[None])
        return head_loss(vl, rl, y.verbs[clips][None], y.relations[clips][None], cfg.tasks)

    def on_epoch(epoch: int, value: float) -> None:
        cx.on_epoch(f"{row.name} lr={lr:g} seed={seed}", epoch, value)
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            with torch.no_grad():
                vs, rs = model.heads(frozen_with(cx, row, model.ctx, sel)[None])
                vv, rv = model.heads(frozen_with(cx, row, model.ctx, val)[None])
            _record(ck, (lr, epoch), vs, rs, vv, rv, sel, cfg.tasks)

    steps_per_epoch = -(-len(subset) // cfg.batch_size)
    return fit(model, loss, len(subset), epochs=epochs or cfg.epochs, lr=lr,
               batch_size=cfg.batch_size, seeds=[seed], params=_groups(model, lr, cfg),
               warmup_steps=round(cfg.finetune.warmup_epochs * steps_per_epoch),
               precision=cfg.precision, on_epoch=on_epoch)


@torch.no_grad()
def frozen_with(cx: Context, row: Row, ctx: nn.Module | None, clips: Split,
                chunk: int = 512) -> torch.Tensor:
    return torch.cat([cx.events(row, ctx, clips[i:i + chunk])
                      for i in range(0, len(clips), chunk)])


def choose(ck: dict[tuple[float, int], Checkpoint]) -> tuple[tuple[float, int], Checkpoint]:
    """The (lr, epochs) with the best mean selection score (ties: fewer epochs, lower lr)."""
    key = max(ck, key=lambda k: (sum(ck[k].score) / len(ck[k].score), -k[1], -k[0]))
    return key, ck[key]
