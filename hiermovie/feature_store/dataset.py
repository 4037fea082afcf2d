"""torch Datasets over a store: whole videos, or fixed-length windows of long videos."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from hiermovie.feature_store.reader import FeatureStore


class SequenceDataset(Dataset):
    """One item per video (or per window of `window` segments taken every `stride`).

    Items are dicts: video_id, features [S, K, D] (store dtype), start_s [S], first (segment
    offset of the window in its video). Videos shorter than a window give one short item,
    which `pad_collate` pads.
    """

    def __init__(self, store: FeatureStore, video_ids: list[str] | None = None, *,
                 window: int | None = None, stride: int | None = None) -> None:
        self.store = store
        ids = store.videos() if video_ids is None else list(video_ids)
        self.items: list[tuple[str, int, int]] = []
        for vid in ids:
            n = store.entry(vid).num_segments
            if window is None or n <= window:
                self.items.append((vid, 0, n))
                continue
            step = stride or window
            starts = list(range(0, n - window + 1, step))
            if starts[-1] != n - window:  # cover the tail too
                starts.append(n - window)
            self.items.extend((vid, s, s + window) for s in starts)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        vid, lo, hi = self.items[i]
        return {
            "video_id": vid,
            "features": torch.from_numpy(np.ascontiguousarray(self.store.get(vid)[lo:hi])),
            "start_s": torch.from_numpy(self.store.times(vid)[0][lo:hi]),
            "first": lo,
        }


def pad_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack variable-length items: features [B, S, K, D] float32 and mask [B, S] (True = real)."""
    n = max(it["features"].shape[0] for it in items)
    k, d = items[0]["features"].shape[1:]
    feats = torch.zeros(len(items), n, k, d, dtype=torch.float32)
    start = torch.zeros(len(items), n, dtype=torch.float64)
    mask = torch.zeros(len(items), n, dtype=torch.bool)
    for b, it in enumerate(items):
        s = it["features"].shape[0]
        feats[b, :s] = it["features"]
        start[b, :s] = it["start_s"]
        mask[b, :s] = True
    return {"video_id": [it["video_id"] for it in items], "features": feats, "start_s": start,
            "mask": mask, "first": torch.tensor([it["first"] for it in items])}
