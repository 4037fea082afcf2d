"""Planning an extract run: its shards, and the identity of the features it stores (provenance,
settings)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from hiermovie.feature_store import Provenance, shard_id_for
from hiermovie.pipeline.plans import SPREAD_FIELDS

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


def settings(cfg: ExtractConfig) -> dict[str, Any]:
    """The fields of the store's identity a rerun knows before its model is loaded (the
    weights' fingerprint and the model's own fields are checked when the store is opened)."""
    return {"backbone": cfg.backbone.name, "tokens_per_segment": tokens_per_segment(cfg),
            "dtype": cfg.dtype, "sampling": sampling(cfg)}


def sampling(cfg: ExtractConfig) -> dict[str, Any]:
    """The plan as provenance. The coverage fields are recorded only when they differ from the
    default centred clip, so stores written before they existed keep their identity (and
    `kind` first, their key order)."""
    plan = {"kind": cfg.plan.kind, **asdict(cfg.plan)}
    if cfg.plan.coverage == "centre":
        for k in ("coverage", *SPREAD_FIELDS):
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
