"""LVU long-form tasks: heads over windows of segments, aggregated per video as LVU does
(classification: sum of the windows' softmax, then argmax; regression: mean of the windows'
predictions), top-1 accuracy / MSE, and the Top-1-rank / mean-rank summary over tasks."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hiermovie.heads.fit import StackedMLP


def windows(seq: torch.Tensor, length: int) -> list[torch.Tensor]:
    """Consecutive windows of `length` segments covering [S, F] (the last one end-aligned)."""
    n = len(seq)
    if n <= length:
        return [seq]
    starts = list(range(0, n - length + 1, length))
    if starts[-1] != n - length:
        starts.append(n - length)
    return [seq[s:s + length] for s in starts]


def window_batch(videos: list[torch.Tensor], length: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Windows of all videos, padded: [W, L, F], mask [W, L], owner video index [W]."""
    parts, owner = [], []
    for i, v in enumerate(videos):
        for w in windows(v, length):
            parts.append(w)
            owner.append(i)
    n = max(len(p) for p in parts)
    x = torch.zeros(len(parts), n, parts[0].shape[-1])
    mask = torch.zeros(len(parts), n, dtype=torch.bool)
    for j, p in enumerate(parts):
        x[j, :len(p)], mask[j, :len(p)] = p, True
    return x, mask, torch.tensor(owner)


class WindowHead(nn.Module):
    """Mean of a window's (event) features, then an MLP or a linear layer."""

    def __init__(self, dim: int, outputs: int, kind: str = "mlp", seed: int = 0,
                 classes: int | None = None) -> None:
        super().__init__()
        self.net = StackedMLP([seed], dim, max(1, dim // 2), outputs, kind)
        self.classes = classes  # None: a regression task (LVU's view count, like ratio)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return self.net(pooled[None])[0]

    def loss(self, x: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy for a classification task, mean squared error for a regression."""
        out = self(x, mask)
        if self.classes:
            return nn.functional.cross_entropy(out, target.long())
        return nn.functional.mse_loss(out[:, 0], target.float())


@torch.no_grad()
def video_predictions(head: WindowHead, x: torch.Tensor, mask: torch.Tensor,
                      owner: torch.Tensor, videos: int, classes: int | None) -> np.ndarray:
    """Per video: the class with the largest summed softmax, or the mean regression output."""
    out = head(x, mask)
    if classes:
        summed = torch.zeros(videos, classes).index_add_(0, owner, out.softmax(-1))
        return summed.argmax(-1).numpy()
    total = torch.zeros(videos).index_add_(0, owner, out[:, 0])
    return (total / torch.bincount(owner, minlength=videos).clamp(min=1)).numpy()


@torch.no_grad()
def official_scores(head: WindowHead, x: torch.Tensor, mask: torch.Tensor, owner: torch.Tensor,
                    target: np.ndarray, classes: int | None) -> dict[str, float]:
    """What chaoyuaw/lvu's `evaluate` reports for one split (src/run.py): `agg` the video-level
    score (classification: top-1 of the summed window softmax; regression: MSE of the mean
    window prediction), `count` its videos, and the window-level `long_term_top1` (each
    window's argmax against its video's label) or `clip_mse`. The official `agg_test` prints
    accuracy in percent ("acc correct count"); here every accuracy is a fraction."""
    videos = len(target)
    agg = task_score(video_predictions(head, x, mask, owner, videos, classes), target, classes)
    out = head(x, mask)
    per_window = torch.as_tensor(target)[owner]
    window = ({"long_term_top1": float((out.argmax(-1) == per_window).float().mean())}
              if classes else {"clip_mse": float(((out[:, 0] - per_window) ** 2).mean())})
    return {"agg": agg, "count": float(videos), **window}


def task_score(pred: np.ndarray, target: np.ndarray, classes: int | None) -> float:
    """Top-1 accuracy for classification, MSE (lower is better) for regression."""
    if classes:
        return float((pred == target).mean())
    return float(((pred - target) ** 2).mean())


def rank_summary(scores: dict[str, dict[str, float]], lower_is_better: set[str]
                 ) -> dict[str, dict[str, float]]:
    """scores[row][task] -> per row: Top-1 rank (tasks where it is best, ties count for all)
    and mean rank over tasks (rank 1 = best; MSE ranked ascending)."""
    rows = list(scores)
    tasks = sorted({t for r in rows for t in scores[r]})
    ranks: dict[str, list[int]] = {r: [] for r in rows}
    for t in tasks:
        have = [r for r in rows if t in scores[r]]
        sign = 1 if t in lower_is_better else -1
        for r in have:
            better = sum(sign * scores[o][t] < sign * scores[r][t] for o in have)
            ranks[r].append(better + 1)
    return {r: {"top1_rank": float(sum(k == 1 for k in ranks[r])),
                "mean_rank": float(np.mean(ranks[r])) if ranks[r] else float("nan")}
            for r in rows}
