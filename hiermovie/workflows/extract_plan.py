"""Planning an extract run from what the store holds: its identity (provenance, settings),
shards, resume, retries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hiermovie.feature_store import Provenance, StoreError, shard_id_for
from hiermovie.feature_store.writer import read_root_attrs, refuse_foreign

if TYPE_CHECKING:
    from hiermovie.workflows.extract import ExtractConfig


def plan_shards(ids: list[str], per_shard: int, done: set[str],
                stored: set[str]) -> list[list[str]]:
    """Sorted ids cut into shards; complete shards and already-stored videos are left out."""
    ids = sorted(ids)
    shards = []
    for i in range(0, len(ids), per_shard):
        part = ids[i:i + per_shard]
        if shard_id_for(part) in done:
            continue
        part = [v for v in part if v not in stored]
        if part:
            shards.append(part)
    return shards



@dataclass
class Resume:
    """What a store holds of this input, read before any work starts."""

    done: set[str]  # committed shard names
    stored: set[str]  # video ids stored (ok or failed)
    earlier_failures: dict[str, str]  # video id -> error, of this input's videos
    redo: list[str]  # committed shards to rewrite (--retry_failed)


def read_resume(url: str, so: dict | None, wanted: set[str], retry_failed: bool) -> Resume:
    """The store's state for this input; an absent store holds nothing."""
    from hiermovie.feature_store import FeatureStore

    try:
        store = FeatureStore(url, storage_options=so, cache_bytes=0)
    except StoreError:
        refuse_foreign(url, so)  # a file or someone's folder: refused before any work
        return Resume(set(), set(), {}, [])
    failed = {v: store.entry(v).error for v in store.videos(status="failed") if v in wanted}
    done, stored = set(store.shard_names), set(store.videos(status=None))
    if not (retry_failed and failed):
        return Resume(done, stored, failed, [])
    names = store.shard_names
    redo = sorted({names[store.entry(v).shard] for v in failed})
    again = {v for v in stored if names[store.entry(v).shard] in redo}
    return Resume(done - set(redo), stored - again, {}, redo)


def exists(url: str, so: dict | None) -> bool:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **(so or {}))
    return fs.exists(path)


def check_same_settings(cfg: ExtractConfig, so: dict | None) -> None:
    """Refuse a rerun whose settings differ from the store's, as `create_store` would once the
    model is loaded (the weights' fingerprint and the model's own fields are not checked)."""
    old = read_root_attrs(cfg.store, so)["provenance"]
    new = {"backbone": cfg.backbone.name, "tokens_per_segment": tokens_per_segment(cfg),
           "dtype": cfg.dtype, "sampling": sampling(cfg)}
    for k, v in new.items():
        if old.get(k) != v:
            raise StoreError(f"{cfg.store}: store holds features with {k}={old.get(k)!r}, this "
                             f"run has {k}={v!r}; write to a new store")


def sampling(cfg: ExtractConfig) -> dict[str, Any]:
    """The plan as provenance. The coverage fields are recorded only when they differ from the
    default centred clip, so stores written before they existed keep their identity (and
    `kind` first, their key order)."""
    plan = {"kind": cfg.plan.kind, **asdict(cfg.plan)}
    if cfg.plan.coverage == "centre":
        for k in ("coverage", "clips_per_segment", "clip_pool"):
            plan.pop(k)
    return {**plan, "resize": cfg.resize}


def tokens_per_segment(cfg: ExtractConfig) -> int:
    """Tokens per stored segment: the backbone's grid, times the clips when kept as tokens."""
    k = int(np.prod(cfg.backbone.tokens))
    return k * cfg.plan.clips if cfg.plan.clip_pool == "tokens" else k


def provenance(cfg: ExtractConfig, d: dict[str, Any]) -> Provenance:
    return Provenance(
        backbone=cfg.backbone.name, dim=d["dim"],
        tokens_per_segment=tokens_per_segment(cfg), dtype=cfg.dtype,
        weights_fingerprint=d["fingerprint"], weights_origin=d["origin"],
        sampling=sampling(cfg),
        preprocessing={"input_size": d["input_size"], "mean": d["mean"], "std": d["std"],
                       "precision": d["precision"], "tokens": list(cfg.backbone.tokens),
                       "weights": cfg.backbone.weights})
