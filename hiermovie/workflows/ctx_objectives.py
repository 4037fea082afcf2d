"""pretrain-ctx's two objectives as models with a loss on one batch: mask prediction (the
method) and, as the probe's positive control, verb and relation labels."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from hiermovie.contextualizer import Contextualizer, mask_loss, random_mask, read_out, targets
from hiermovie.contextualizer.masking import bert_corrupt
from hiermovie.contextualizer.objectives import TargetNorm, teacher_targets


class MaskPredictor(nn.Module):
    """The contextualizer plus the small head that predicts masked segments' targets: their
    features (`feature`, `centered`), or with `ema_layers` > 0 an EMA teacher's outputs
    (data2vec), the teacher part of the state dict so checkpoints resume it exactly."""

    def __init__(self, ctx: Contextualizer, dim: int, ema_layers: int = 0) -> None:
        super().__init__()
        self.ctx = ctx
        self.ema_layers = ema_layers
        self.teacher = copy.deepcopy(ctx).requires_grad_(False) if ema_layers else None
        self.head = nn.Linear(ctx.config.width, ctx.config.width if ema_layers else dim)

    @torch.no_grad()
    def targets(self, feats: torch.Tensor, valid: torch.Tensor, start_s: torch.Tensor | None,
                centered: bool = False, norm: TargetNorm = "segment") -> torch.Tensor:
        """Every segment's target [B, S, D]."""
        if self.teacher is None:
            return targets(feats, valid, centered, norm)
        self.teacher.eval()
        return teacher_targets(self.teacher(feats, valid, None, start_s, layers=True),
                               self.ema_layers)

    @torch.no_grad()
    def ema_update(self, momentum: float) -> None:
        for t, s in zip(self.teacher.parameters(), self.ctx.parameters(), strict=True):
            t.lerp_(s, 1 - momentum)

    def forward(self, feats: torch.Tensor, valid: torch.Tensor, masked: torch.Tensor,
                start_s: torch.Tensor | None = None, visible: bool = False,
                token: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Predicted features [N, D] at the masked positions and, with `visible`, at the
        visible ones (the head runs only where a loss reads it). `token`: where the mask
        token goes, when not at every masked position (BERT's replacement)."""
        h = self.ctx(feats, valid, masked if token is None else token, start_s)
        return self.head(h[masked]), self.head(h[valid & ~masked]) if visible else None


class LabelPredictor(nn.Module):
    """The contextualizer plus linear verb and relation heads (VidSitu's five events)."""

    def __init__(self, ctx: Contextualizer, verbs: int, relations: int) -> None:
        super().__init__()
        self.ctx = ctx
        self.verb = nn.Linear(ctx.config.width, verbs)
        self.rel = nn.Linear(2 * ctx.config.width, relations)

    def forward(self, feats: torch.Tensor, valid: torch.Tensor,
                start_s: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.ctx(feats, valid, None, start_s)
        pairs = h[:, [0, 1, 3, 4]]
        return self.verb(h), self.rel(torch.cat([pairs, h[:, 2:3].expand_as(pairs)], -1))


def batch_loss(model: nn.Module, batch: dict[str, Any], cfg: Any, device: torch.device,
               generator: torch.Generator, mean_target: torch.Tensor | None = None,
               visible_weight: float = 0.0) -> tuple[torch.Tensor, int]:
    """The objective's loss on one batch and how many predictions it averages; with
    `mean_target` (mask prediction only), the loss of predicting that constant instead. With
    `visible_weight` > 0 (training only: validation scores the masked positions), the visible
    positions' own features are predicted too, at that weight, so their outputs are trained."""
    feats = batch["features"].to(device)
    valid = batch["mask"].to(device)
    start = batch["start_s"].to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        if cfg.objective == "supervised":
            vlog, rlog = model(feats, valid, start)
            verbs, rels = batch["verbs"].to(device), batch["relations"].to(device)
            loss = (nn.functional.cross_entropy(vlog.flatten(0, 1).float(), verbs.flatten(),
                                                ignore_index=-1)
                    + nn.functional.cross_entropy(rlog.flatten(0, 1).float(), rels.flatten()))
            return loss, len(feats)
        masked = random_mask(valid, ratio=cfg.mask_ratio, count=cfg.mask_count,
                             span=cfg.mask_span, generator=generator)
        tgt = getattr(model, "module", model).targets(feats, valid, start,
                                                        cfg.target == "centered",
                                                        cfg.target_norm)
        if mean_target is not None:
            pred = mean_target.expand_as(tgt[masked])
            return mask_loss(pred, tgt[masked], cfg.loss, cfg.temperature), int(masked.sum())
        token = None
        if cfg.mask_mode == "bert":
            feats, token = bert_corrupt(feats, valid, masked, generator=generator)
        pred, pred_seen = model(feats, valid, masked, start, visible_weight > 0, token)
        loss = mask_loss(pred, tgt[masked], cfg.loss, cfg.temperature)
        if pred_seen is not None:
            loss = loss + visible_weight * mask_loss(pred_seen, tgt[valid & ~masked], cfg.loss,
                                                     cfg.temperature)
    return loss, int(masked.sum())


def masked_loss(model: nn.Module, batch: dict[str, Any], cfg: Any, device: torch.device,
                generator: torch.Generator) -> torch.Tensor:
    return batch_loss(model, batch, cfg, device, generator,
                      visible_weight=cfg.visible_weight)[0]


@torch.no_grad()
def evaluate(model: nn.Module, val: Any, collate: Any, cfg: Any, device: torch.device,
             mean_target: torch.Tensor | None = None) -> float:
    """Validation loss with fixed masks; with `mean_target`, the loss of predicting it."""
    model.eval()
    total, n = 0.0, 0
    g = torch.Generator().manual_seed(12345)
    for i in range(0, len(val), cfg.batch_size):
        batch = collate([val[j] for j in range(i, min(i + cfg.batch_size, len(val)))])
        loss, k = batch_loss(model, batch, cfg, device, g, mean_target)
        total, n = total + loss.item() * k, n + k
    model.train()
    return total / max(n, 1)


@torch.no_grad()
def clip_share(x: torch.Tensor, valid: torch.Tensor) -> float:
    """Share of the variance of segment features [B, S, F] that is common to their clip: near
    1 means the outputs collapsed to a clip summary and lost the segment."""
    w = valid[..., None].float()
    mean = (x * w).sum((0, 1)) / w.sum((0, 1))
    clip = (x * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp(min=1)
    total = (((x - mean) ** 2) * w).sum()
    return float((((clip - mean) ** 2) * w).sum() / total.clamp(min=1e-12))


def identity_readout(out: torch.Tensor, feats: torch.Tensor, valid: torch.Tensor
                     ) -> dict[str, float | None]:
    """Can a linear map find each segment's own backbone feature in its output? A ridge map
    output -> feature is fit on the first half of the clips; on the second half, a segment
    counts as found when its mapped output is closer (cosine) to its own feature than to its
    clip-mates'. Chance is 1 / segments per clip; a collapsed contextualizer sits near it."""
    half = out.shape[0] // 2
    fit_m, test_m = valid[:half], valid[half:]
    if not fit_m.any() or (test_m.sum(1) < 2).all():
        return {"identity_readout": None, "identity_chance": None}
    x, y = out[:half][fit_m].double(), feats[:half][fit_m].double()
    mx, my = x.mean(0), y.mean(0)
    x, y = x - mx, y - my
    gram = x.T @ x
    ridge = 1e-2 * gram.trace() / gram.shape[0] + 1e-8
    w = torch.linalg.solve(gram + ridge * torch.eye(gram.shape[0], dtype=gram.dtype), x.T @ y)
    pred = (out[half:].double() - mx) @ w  # [B, S, F], compared within the clip
    sim = torch.nn.functional.cosine_similarity(pred[:, :, None], (feats[half:].double() - my)
                                                [:, None], dim=-1)  # [B, S (pred), S (own)]
    sim = sim.masked_fill(~test_m[:, None, :], -torch.inf)
    keep = test_m & (test_m.sum(1, keepdim=True) >= 2)
    found = sim.argmax(-1) == torch.arange(sim.shape[1])
    chance = (1 / test_m.sum(1, keepdim=True).float()).expand_as(keep)
    return {"identity_readout": float(found[keep].float().mean()),
            "identity_chance": float(chance[keep].mean())}


@torch.no_grad()
def collapse_check(model: torch.nn.Module, val: Any, collate: Callable,
                   device: torch.device) -> dict[str, float]:
    model.eval()
    batch = collate([val[i] for i in range(min(len(val), 256))])
    feats, valid = batch["features"].to(device), batch["mask"].to(device)
    out = read_out(model.ctx, feats, batch["start_s"].to(device), valid)
    own = feats.mean(2)
    return {"clip_share_backbone": clip_share(own, valid),
            "clip_share_contextualizer": clip_share(out.float(), valid),
            **identity_readout(out.float(), own, valid)}
