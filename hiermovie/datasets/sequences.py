"""What a contextualizer trains on, from one or more stores: a stable held-out split of the
videos, and their sequences (whole videos or windows), with VidSitu's labels when asked."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from torch.utils.data import ConcatDataset, Dataset

from hiermovie.datasets import data_root
from hiermovie.feature_store import FeatureStore, SequenceDataset, pad_collate


def split_videos(ids: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """A stable split by hashed id: the same video is held out whatever else is in the store;
    at least one video (the lowest hash) is held out, and never trained on."""
    def score(v: str) -> float:
        return int(hashlib.sha1(v.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    val = {v for v in ids if score(v) < val_fraction} or {min(ids, key=score)}
    return [v for v in ids if v not in val], [v for v in ids if v in val]


def sequences(stores: list[FeatureStore], ids: list[str], window: int = 0,
              labels_from: str = "") -> tuple[Dataset, Callable, tuple[int, int] | None]:
    """The sequences of `ids` across the stores (a video in several: the first store's), in
    windows of `window` segments (0: whole videos); with `labels_from` (vidsitu:ROOT, for
    --objective supervised) their labels and the (verbs, relations) class counts."""
    parts, left = [], set(ids)
    window = window or None
    for st in stores:
        mine = [v for v in ids if v in left and v in st]
        left -= set(mine)
        if not mine:
            continue
        if labels_from:
            from hiermovie.datasets.labelled import VidSituSequences

            ds = VidSituSequences(st, data_root(labels_from, "vidsitu"), "train")
            keep = set(mine)
            ds.items = [it for it in ds.items if it[0] in keep]
        else:
            ds = SequenceDataset(st, mine, window=window, stride=window)
        parts.append(ds)
    if not labels_from:
        return ConcatDataset(parts), pad_collate, None
    from hiermovie.datasets.labelled import labelled_collate
    from hiermovie.datasets.vidsitu import RELATIONS

    return ConcatDataset(parts), labelled_collate, (len(parts[0].vocab), len(RELATIONS))
