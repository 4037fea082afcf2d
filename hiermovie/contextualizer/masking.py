"""The masking step of mask prediction (one small function, as in MAE)."""

from __future__ import annotations

import torch


def random_mask(valid: torch.Tensor, *, ratio: float = 0.3, count: int = 0, span: int = 1,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Choose segments to mask: [B, S] bool, True = masked.

    Per sequence, `count` segments (if > 0) or `ratio` of its real segments, rounded, and at
    least one; never padding (`valid` False); never every segment of a sequence longer than
    one. With `span` > 1 the choice is made in contiguous runs of `span` segments.
    """
    b, s = valid.shape
    n_valid = valid.sum(1)
    want = torch.full_like(n_valid, count) if count > 0 else torch.round(n_valid * ratio).long()
    want = torch.minimum(want.clamp(min=1), (n_valid - 1).clamp(min=1))
    span = max(1, span)
    # a random score per span start; padding and non-starts never win
    noise = torch.rand(b, s, generator=generator, device=valid.device)
    starts = torch.arange(s, device=valid.device) % span == 0
    noise = torch.where(valid & starts, noise, torch.full_like(noise, 2.0))
    order = noise.argsort(dim=1)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(s, device=valid.device).expand(b, s))
    n_starts = (want + span - 1) // span
    chosen = (rank < n_starts[:, None]) & valid & starts
    mask = chosen.clone()
    for k in range(1, span):  # extend each chosen start over its run
        mask[:, k:] |= chosen[:, :-k]
    mask &= valid
    # trim runs so exactly `want` are masked: drop the last masked positions beyond `want`
    excess = mask.cumsum(1) > want[:, None]
    return mask & ~excess


def bert_corrupt(features: torch.Tensor, valid: torch.Tensor, masked: torch.Tensor, *,
                 generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's replacement for the chosen (`masked`) segments, all of which are still scored:
    80% show the mask token, 10% another real segment's features (from anywhere in the batch)
    and 10% their own, so the model cannot tell a scored segment by its token and its output
    at unmasked segments is trained too. Returns (features, where the mask token goes)."""
    u = torch.rand(masked.shape, generator=generator, device=masked.device)
    token = masked & (u < 0.8)
    swap = masked & (u >= 0.8) & (u < 0.9)
    pool = features[valid]  # [N, K, D] every real segment of the batch
    pick = torch.randint(len(pool), (int(swap.sum()),), generator=generator,
                         device=features.device)
    out = features.clone()
    out[swap] = pool[pick]
    return out, token
