"""What pretrain-ctx trains and validates on: the videos of one or more stores that the config
selects, split into training and validation (`datasets.sequences`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from hiermovie.config import ConfigError
from hiermovie.datasets import data_root
from hiermovie.datasets.sequences import sequences, split_videos
from hiermovie.feature_store import FeatureStore, Provenance, usable_videos
from hiermovie.workflows.pretrain_ctx.config import PretrainCtxConfig


def select_videos(videos: str, data: str, have: list[str], where: str
                  ) -> tuple[list[str], dict]:
    """The videos this run may use, and what was chosen and excluded (for summary.json)."""
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
