"""What pretrain-ctx trains and validates on: the selected videos of one or more stores,
a stable held-out split, and seeded batches addressable by step (exact resume)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torch.utils.data import ConcatDataset, Dataset

from hiermovie.config import ConfigError
from hiermovie.datasets import data_root
from hiermovie.feature_store import (
    FeatureStore,
    Provenance,
    SequenceDataset,
    pad_collate,
    usable_videos,
)

if TYPE_CHECKING:
    from hiermovie.workflows.pretrain_ctx import PretrainCtxConfig


def split_videos(ids: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """A stable split by hashed id: the same video is held out whatever else is in the store;
    at least one video (the lowest hash) is held out, and never trained on."""
    def score(v: str) -> float:
        return int(hashlib.sha1(v.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    val = {v for v in ids if score(v) < val_fraction} or {min(ids, key=score)}
    return [v for v in ids if v not in val], [v for v in ids if v in val]


def select_videos(videos: str, data: str, have: list[str], where: str
                  ) -> tuple[list[str], dict]:
    """The videos this run may use, and what was chosen and excluded (for summary.json)."""
    from hiermovie.config import ConfigError
    from hiermovie.datasets.vidsitu import VidSitu

    chosen, note = list(have), {"videos": videos or "every video of the stores"}
    if videos and not videos.startswith("split:"):
        try:
            wanted = {ln.strip() for ln in Path(videos).read_text().splitlines()}
        except OSError as e:
            raise ConfigError(f"videos: cannot read {videos}: {e.strerror}") from None
        chosen = [v for v in chosen if v in wanted - {""}]
    if data:
        root = data_root(data, "vidsitu")
        if videos.startswith("split:"):
            keep = set(VidSitu(root, videos[6:]).clips)
            chosen = [v for v in chosen if v in keep]
        held = set(VidSitu(root, "valid").clips)
        note["excluded_validation_clips"] = sum(v in held for v in chosen)
        chosen = [v for v in chosen if v not in held]
    if not chosen:
        raise ConfigError(f"{where}: no videos left to train on ({note})")
    return chosen, note


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


@dataclass
class CtxData:
    """pretrain-ctx's data: the stores' features, split into training and validation."""

    provenance: Provenance  # the first store's (all share its K and D)
    train: Dataset
    val: Dataset
    collate: Callable
    classes: tuple[int, int] | None  # --objective supervised: (verbs, relations)
    selection: dict  # how the videos were chosen, for the summary
    sizes: dict[str, int]


def load_data(cfg: PretrainCtxConfig) -> CtxData:
    """Open `cfg.store`'s stores, keep the usable videos `cfg` selects and split them."""
    stores = [FeatureStore(u, storage_options=cfg.storage_options or None) for u in cfg.store]
    prov = stores[0].provenance
    for st in stores[1:]:
        if (st.provenance.dim, st.provenance.tokens_per_segment) != (
                prov.dim, prov.tokens_per_segment):
            raise ConfigError(f"store: {st.url} holds K={st.provenance.tokens_per_segment} "
                              f"D={st.provenance.dim} features, {stores[0].url} "
                              f"K={prov.tokens_per_segment} D={prov.dim}")
    have, unusable = usable_videos(stores, "pretrain-ctx")
    chosen, selection = select_videos(cfg.videos, cfg.data, have, ",".join(cfg.store))
    selection["skipped_unusable"] = unusable
    train_ids, val_ids = split_videos(chosen, cfg.val_fraction)
    if not train_ids:
        raise ConfigError(f"{','.join(cfg.store)}: one video left after holding out the "
                          "validation videos; nothing to train on")
    labels_from = cfg.data if cfg.objective == "supervised" else ""
    train, collate, classes = sequences(stores, train_ids, cfg.window, labels_from)
    val = sequences(stores, val_ids, cfg.window, labels_from)[0]
    sizes = {"train_videos": len(train_ids), "val_videos": len(val_ids),
             "train_sequences": len(train), "val_sequences": len(val)}
    return CtxData(prov, train, val, collate, classes, selection, sizes)
