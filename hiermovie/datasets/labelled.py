"""Store features joined with VidSitu labels, for users who train their own heads: a torch
Dataset of sequences (`VidSituSequences`), or clips held in memory (`Clips`, what the probe
trains on)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hiermovie.config import ConfigError
from hiermovie.datasets.vidsitu import RELATION_PAIRS, RELATIONS, VidSitu, verb_vocab
from hiermovie.feature_store import FeatureStore, SequenceDataset, pad_collate


class VidSituSequences(SequenceDataset):
    """One item per VidSitu clip of `split` that the store holds: `SequenceDataset`'s item
    (video_id, features [5, K, D], start_s, first) plus `verbs` [5] (ids into `vocab`; the
    majority of the annotators' verbs where there are votes, -1 for a verb not in `vocab`)
    and `relations` [4] (Ev1, Ev2, Ev4, Ev5 relative to Ev3, ids into `RELATIONS`, from the
    first record). `vocab` defaults to the training split's verbs, most frequent first."""

    def __init__(self, store: FeatureStore, root: str, split: str = "train",
                 vocab: list[str] | None = None) -> None:
        self.labels = VidSitu(root, split)
        if vocab is None:  # the training split's, read once
            vocab = verb_vocab(self.labels if split == "train" else VidSitu(root, "train"))
        self.vocab = vocab
        self.verb_id = {v: i for i, v in enumerate(self.vocab)}
        clips = [c for c in self.labels.clips if c in store and c in self.labels.records
                 and store.entry(c).status == "ok"]
        super().__init__(store, clips)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = super().__getitem__(i)
        verbs, rels = clip_labels(self.labels, item["video_id"], self.verb_id)
        return {**item, "verbs": torch.tensor(verbs), "relations": torch.tensor(rels)}


def clip_labels(ds: VidSitu, clip: str, verb_id: dict[str, int]) -> tuple[list[int], list[int]]:
    """What a clip is trained on: per event the majority of the annotators' verbs (the first
    record's where there are no votes, as in the training split), as ids (-1: a verb not in
    `verb_id`); per pair (Ev1, Ev2, Ev4, Ev5 relative to Ev3) the first record's relation."""
    verbs = [verb_id.get(v, -1) for v in ds.majority_verbs(clip)]
    rels = [RELATIONS.index(r[0]) for r in ds.relations(clip, records=1)]
    assert len(rels) == len(RELATION_PAIRS)
    return verbs, rels


def labelled_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """`pad_collate`, plus `verbs` [B, 5] and `relations` [B, 4]."""
    batch = pad_collate(items)
    batch["verbs"] = torch.stack([it["verbs"] for it in items])
    batch["relations"] = torch.stack([it["relations"] for it in items])
    return batch


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
    """`clips` with their verb and relation ids (`clip_labels`)."""
    index = {v: i for i, v in enumerate(vocab)}
    verbs, relations = zip(*(clip_labels(ds, c, index) for c in ids), strict=True)
    clips.verbs, clips.relations = torch.tensor(verbs), torch.tensor(relations)
    return clips


def verb_clips(root: str, n: int) -> tuple[VidSitu, list[str]]:
    """VidSitu's validation split at `root` and its first `n` clips with a video on disk: the
    clips a backbone's verb share is measured on (at least 2)."""
    ds = VidSitu(root, "valid")
    chosen = [c for c in ds.clips if ds.video_path(c).exists()][:n]
    if len(chosen) < 2:
        raise ConfigError(f"labelled: {root}: fewer than 2 validation clips with videos")
    return ds, chosen
