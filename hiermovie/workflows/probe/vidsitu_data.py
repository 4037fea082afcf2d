"""What `probe vidsitu` reads, loaded once before any training: the clips with usable features,
split into the labelled pool, the selection clips and the validation clips, each as `Clips`
(features, event times, labels), and the annotations the metrics and the role decoder read, as
plain values: nothing after loading reads the data set."""

from __future__ import annotations

from dataclasses import dataclass

from hiermovie.config import ConfigError
from hiermovie.datasets import data_root
from hiermovie.datasets.labelled import Clips, labelled, load_clips
from hiermovie.datasets.synth import event_groups
from hiermovie.datasets.vidsitu import ValidTruth, VidSitu, verb_vocab
from hiermovie.feature_store import FeatureStore, Provenance, open_stores, usable_videos
from hiermovie.heads.srl import target_text
from hiermovie.workflows.probe.config import VidSituProbeConfig


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
