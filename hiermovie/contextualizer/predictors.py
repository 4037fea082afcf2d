"""The contextualizer with what it is pretrained to predict, each a model whose forward pass on
a batch is its loss (`loss, n = model(batch)`, as MAE's): mask prediction (the method) and,
for the probe's positive control, verb and relation labels."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from hiermovie.config import opt
from hiermovie.contextualizer.masking import bert_corrupt, random_mask
from hiermovie.contextualizer.model import Contextualizer, decay_groups
from hiermovie.contextualizer.objectives import (
    Loss,
    Target,
    TargetNorm,
    clip_infonce,
    mask_loss,
    targets,
    teacher_targets,
)
from hiermovie.datasets.vidsitu import CENTRE_EVENT, RELATED_EVENTS

Batch = dict[str, torch.Tensor]  # features [B, S, K, D], mask [B, S], start_s [B, S], labels


@dataclass(frozen=True)
class MaskSpec:
    """Which segments are masked, what they show, what they predict, how it is scored
    (pretrain-ctx's `mask` section)."""

    ratio: float = opt(0.3, "fraction of a sequence's segments masked (at least one)")
    count: int = opt(0, "mask exactly this many segments instead (0 = use the ratio)")
    span: int = opt(1, "mask contiguous runs of this many segments")
    mode: Literal["token", "bert"] = opt(
        "token", "what a chosen segment shows: the mask token, or BERT's 80/10/10 split of "
        "mask token / another segment / itself (all scored)")
    target: Target = opt(
        "feature", "what a masked segment predicts: its feature, its feature less its clip's "
        "mean (the part its clip-mates do not share), or ema: an EMA teacher's output on the "
        "whole clip (data2vec)")
    norm: TargetNorm = opt(
        "segment", "targets normalised per segment over channels, or standardised per channel")
    ema_layers: int = opt(2, "ema: the teacher's top layers averaged into the target")
    loss: Loss = opt("infonce_clip", "infonce_clip (the default: InfoNCE at each masked "
                     "segment against the other segments of the same clip, so what a clip "
                     "shares cannot answer; BENCHMARKS.md, 'objectives for a small verb "
                     "share'), l2 on normalised targets, cosine, or infonce (the other masked "
                     "segments of the batch are the negatives)")
    temperature: float = opt(0.1, "infonce and infonce_clip temperature")
    visible_weight: float = opt(0.0, "also predict the visible segments' own features, at "
                                "this weight (0 = masked segments only)")

    def __post_init__(self) -> None:
        if not 0 < self.ratio < 1:
            raise ValueError("ratio: must be in (0, 1)")
        if self.span < 1 or self.count < 0 or self.ema_layers < 1:
            raise ValueError("span and ema_layers: must be >= 1, count >= 0")
        if self.visible_weight < 0 or self.temperature <= 0:
            raise ValueError("visible_weight: must be >= 0, temperature > 0")


class _Pretrained(nn.Module):
    """What both pretraining models share: their optimiser groups, and saving as a folder
    (the contextualizer as transformers saves it, each head beside it as safetensors)."""

    ctx: Contextualizer
    HEADS: dict[str, str] = {}  # attribute -> file name (without .safetensors)

    def param_groups(self, weight_decay: float, which: str = "weights") -> list[dict]:
        """AdamW's groups: `contextualizer.decay_groups` over the whole model."""
        return decay_groups(self, weight_decay, which)

    def save_pretrained(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        self.ctx.save_pretrained(path)
        for attr, name in self.HEADS.items():
            save_file(getattr(self, attr).state_dict(), str(Path(path) / f"{name}.safetensors"))

    def _load_heads(self, path: str | Path) -> None:
        from safetensors.torch import load_file

        for attr, name in self.HEADS.items():
            getattr(self, attr).load_state_dict(load_file(str(Path(path) / f"{name}.safetensors")))


class MaskPredictor(_Pretrained):
    """The contextualizer plus the small head that predicts masked segments' targets: their
    features (`feature`, `centered`), or for `ema` an EMA teacher's outputs (data2vec), the
    teacher part of the state dict so checkpoints resume it exactly."""

    HEADS = {"head": "prediction_head"}

    @classmethod
    def from_pretrained(cls, path: str | Path, dim: int, spec: MaskSpec = MaskSpec()
                        ) -> MaskPredictor:
        """A model `save_pretrained` wrote (pretrain-ctx's `OUT/contextualizer`)."""
        model = cls(Contextualizer.from_pretrained(path), dim, spec)
        model._load_heads(path)
        return model

    def __init__(self, ctx: Contextualizer, dim: int, spec: MaskSpec = MaskSpec()) -> None:
        super().__init__()
        self.ctx, self.spec = ctx, spec
        ema = spec.target == "ema"
        self.teacher = copy.deepcopy(ctx).requires_grad_(False) if ema else None
        self.head = nn.Linear(ctx.config.width, ctx.config.width if ema else dim)

    @torch.no_grad()
    def targets(self, feats: torch.Tensor, valid: torch.Tensor,
                start_s: torch.Tensor | None) -> torch.Tensor:
        """Every segment's target [B, S, D]."""
        if self.teacher is None:
            return targets(feats, valid, self.spec.target == "centered", self.spec.norm)
        self.teacher.eval()
        return teacher_targets(self.teacher(feats, valid, None, start_s, layers=True),
                               self.spec.ema_layers)

    @torch.no_grad()
    def ema_update(self, momentum: float) -> None:
        for t, s in zip(self.teacher.parameters(), self.ctx.parameters(), strict=True):
            t.lerp_(s, 1 - momentum)

    def forward(self, batch: Batch, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, int]:
        """The loss at the masked segments and how many it averages; in training mode plus
        the visible segments' loss (`visible_weight`; validation scores masked segments
        only)."""
        s = self.spec
        feats, valid, start = batch["features"], batch["mask"], batch["start_s"]
        masked, tgt = self._masked(batch, generator)
        token = masked
        if s.mode == "bert":
            feats, token = bert_corrupt(feats, valid, masked, generator=generator)
        pred = self.head(self.ctx(feats, valid, token, start))
        loss = self._score(pred, tgt, valid, masked)
        if self.training and s.visible_weight > 0:
            loss = loss + s.visible_weight * self._score(pred, tgt, valid, valid & ~masked)
        return loss, int(masked.sum())

    def baseline(self, batch: Batch, generator: torch.Generator | None,
                 mean_target: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The loss of predicting the constant `mean_target` at the segments `forward` would
        mask with the same generator: what a model that learned nothing scores."""
        masked, tgt = self._masked(batch, generator)
        return self._score(mean_target.expand_as(tgt), tgt, batch["mask"], masked), int(
            masked.sum())

    def _masked(self, batch: Batch, generator: torch.Generator | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        s, valid = self.spec, batch["mask"]
        masked = random_mask(valid, ratio=s.ratio, count=s.count, span=s.span,
                             generator=generator)
        return masked, self.targets(batch["features"], valid, batch["start_s"])

    def _score(self, pred: torch.Tensor, tgt: torch.Tensor, valid: torch.Tensor,
               where: torch.Tensor) -> torch.Tensor:
        """The loss of predictions [B, S, D] at the segments `where` [B, S]."""
        s = self.spec
        if s.loss == "infonce_clip":
            return clip_infonce(pred, tgt, valid, where, s.temperature)
        return mask_loss(pred[where], tgt[where], s.loss, s.temperature)


class LabelPredictor(_Pretrained):
    """The contextualizer plus linear verb and relation heads (VidSitu's five events)."""

    HEADS = {"verb": "verb_head", "rel": "relation_head"}

    @classmethod
    def from_pretrained(cls, path: str | Path, verbs: int, relations: int) -> LabelPredictor:
        """A model `save_pretrained` wrote (`pretrain-ctx --objective supervised`)."""
        model = cls(Contextualizer.from_pretrained(path), verbs, relations)
        model._load_heads(path)
        return model

    def __init__(self, ctx: Contextualizer, verbs: int, relations: int) -> None:
        super().__init__()
        self.ctx = ctx
        self.verb = nn.Linear(ctx.config.width, verbs)
        self.rel = nn.Linear(2 * ctx.config.width, relations)

    def logits(self, feats: torch.Tensor, valid: torch.Tensor,
               start_s: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.ctx(feats, valid, None, start_s)
        pairs = h[:, list(RELATED_EVENTS)]
        centre = h[:, CENTRE_EVENT:CENTRE_EVENT + 1].expand_as(pairs)
        return self.verb(h), self.rel(torch.cat([pairs, centre], -1))

    def forward(self, batch: Batch, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, int]:
        """Verb plus relation cross-entropy, and the clips it averages over."""
        vlog, rlog = self.logits(batch["features"], batch["mask"], batch["start_s"])
        loss = (nn.functional.cross_entropy(vlog.flatten(0, 1).float(),
                                            batch["verbs"].flatten(), ignore_index=-1)
                + nn.functional.cross_entropy(rlog.flatten(0, 1).float(),
                                              batch["relations"].flatten()))
        return loss, len(batch["features"])
