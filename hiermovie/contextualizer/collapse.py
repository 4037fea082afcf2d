"""The contextualizer's collapse diagnostics: does each segment's output still tell its own
segment apart, or has it become a summary of its clip? (pretrain-ctx reports them.)"""

from __future__ import annotations

import torch

from hiermovie.contextualizer.model import Contextualizer
from hiermovie.contextualizer.readout import read_out


@torch.no_grad()
def clip_share(x: torch.Tensor, valid: torch.Tensor) -> float | None:
    """Share of the variance of segment features [B, S, F] that is common to their clip: near
    1 means the outputs collapsed to a clip summary and lost the segment. None when the
    held-out clips cannot show it: fewer than 2 clips, or none with 2 segments (one clip's
    share is 0 and one-segment clips' is 1, whatever the model)."""
    if int((valid.sum(1) > 0).sum()) < 2 or not bool((valid.sum(1) >= 2).any()):
        return None
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
def collapse_check(ctx: Contextualizer, batch: dict[str, torch.Tensor]
                   ) -> dict[str, float | None]:
    """Has the contextualizer kept each segment, or collapsed to a clip summary? On held-out
    clips (`batch`: features [B, S, K, D], mask, start_s): the clip's share of the variance of
    its outputs against the backbone features', and the identity read-out."""
    ctx.eval()
    feats, valid = batch["features"], batch["mask"]
    out = read_out(ctx, feats, batch["start_s"], valid)
    own = feats.mean(2)
    return {"clip_share_backbone": clip_share(own, valid),
            "clip_share_contextualizer": clip_share(out.float(), valid),
            **identity_readout(out.float(), own, valid)}
