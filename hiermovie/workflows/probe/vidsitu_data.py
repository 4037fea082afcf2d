"""What `probe vidsitu` reads, loaded once before any training: the clips with usable features,
split into the labelled pool, the selection clips and the validation clips, each as `Clips`
(features, event times, labels), and the annotations the metrics and the role decoder read, as
plain values: nothing after loading reads the data set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hiermovie.config import ConfigError
from hiermovie.datasets import data_root
from hiermovie.datasets.synth import event_groups
from hiermovie.datasets.vidsitu import RELATIONS, VidSitu, verb_vocab
from hiermovie.feature_store import FeatureStore, Provenance, open_stores, usable_videos
from hiermovie.heads.srl import target_text
from hiermovie.heads.vidsitu import ValidTruth
from hiermovie.workflows.probe.config import VidSituProbeConfig


@dataclass
class Clips:
    """Clips' backbone features, event times and (training clips only) labels."""

    features: torch.Tensor  # [N, 5, K, D]
    start_s: torch.Tensor  # [N, 5] the events' start times (a time-position model reads them)
    verbs: torch.Tensor | None = None  # [N, 5] verb ids
    relations: torch.Tensor | None = None  # [N, 4] relation ids of Ev1, Ev2, Ev4, Ev5 vs Ev3

    def __getitem__(self, idx: slice | torch.Tensor) -> Clips:
        v, r = self.verbs, self.relations
        return Clips(self.features[idx], self.start_s[idx], None if v is None else v[idx],
                     None if r is None else r[idx])

    def __len__(self) -> int:
        return len(self.features)


@dataclass
class VidSituData:
    pool_ids: list[str]  # labelled training clips the heads train on
    select_ids: list[str]  # training clips that choose each row's lr and epochs
    valid_ids: list[str]  # validation clips with features
    pool: Clips
    select: Clips
    valid: Clips
    pool_roles: list[list[str]]  # per pool clip and event: the role decoder's target text
    truth: ValidTruth
    vocab: list[str]
    coverage: dict
    provenance: Provenance


def features(store: FeatureStore, clips: list[str]) -> torch.Tensor:
    """[clips, S, K, D] float32 backbone features."""
    return torch.stack([torch.from_numpy(store.get(c).astype(np.float32)) for c in clips])


def load_clips(store: FeatureStore, clips: list[str], other: FeatureStore | None = None
               ) -> Clips:
    """The clips' features (with `other`'s fused in) and their events' start times."""
    times = torch.stack([torch.from_numpy(store.times(c)[0]).float() for c in clips])
    feats = features(store, clips)
    return Clips(fuse(feats, other, clips) if other else feats, times)


def fuse(feats: torch.Tensor, other: FeatureStore, clips: list[str]) -> torch.Tensor:
    """Append `other`'s per-segment features (pooled over its tokens) to every token."""
    have = set(other.videos())
    missing = [c for c in clips if c not in have]
    if missing:
        raise ConfigError(f"{other.url}: no features for {len(missing)} of the clips "
                          f"(e.g. {missing[0]!r}); fusing needs every clip in both stores")
    extra = features(other, clips)
    if extra.shape[1] != feats.shape[1]:
        raise ConfigError(f"{other.url}: {extra.shape[1]} segments per clip, the store has "
                          f"{feats.shape[1]}")
    return torch.cat([feats, extra.mean(2, keepdim=True).expand(-1, -1, feats.shape[2], -1)], -1)


def labelled(clips: Clips, ds: VidSitu, ids: list[str], vocab: list[str]) -> Clips:
    """`clips` with their verb and relation ids."""
    index = {v: i for i, v in enumerate(vocab)}
    clips.verbs = torch.tensor([[index[v] for v in ds.verbs(c)] for c in ids])
    clips.relations = torch.tensor([[RELATIONS.index(r[0]) for r in ds.relations(c, records=1)]
                                    for c in ids])
    return clips


def load_vidsitu(cfg: VidSituProbeConfig) -> VidSituData:
    root = data_root(cfg.data, "vidsitu")
    train, valid = VidSitu(root, "train"), VidSitu(root, "valid")
    store = open_stores(cfg.store, cfg.storage_options or None)
    other = (FeatureStore(cfg.fuse_store, storage_options=cfg.storage_options or None)
             if cfg.fuse_store else None)
    # every store features come from passes the one check: a clip unusable in either is out
    bad = usable_videos([store, *([other] if other else [])], "probe")[1]
    have = set(store.videos()) - set(bad)
    tr_all = [c for c in train.clips if c in have and c in train.records]
    va = [c for c in valid.clips if c in have and c in valid.records]
    coverage = {"train": train.coverage(have), "valid": valid.coverage(have)}
    if len(tr_all) < 2 or not va:
        raise ConfigError(f"{cfg.store}: no features for the VidSitu clips of {root} "
                          f"(coverage {coverage})")
    select_ids, pool_ids = cfg.selection(tr_all)
    vocab = verb_vocab(train)
    pool, select, valid_clips = (load_clips(store, c, other) for c in (pool_ids, select_ids, va))
    roles = "roles" in cfg.tasks
    pool_roles = [[target_text(r) for r in train.roles(c)] for c in pool_ids] if roles else []
    return VidSituData(pool_ids, select_ids, va, labelled(pool, train, pool_ids, vocab),
                       labelled(select, train, select_ids, vocab), valid_clips, pool_roles,
                       ValidTruth.read(valid, va, roles, event_groups(root)), vocab, coverage,
                       store.provenance)
