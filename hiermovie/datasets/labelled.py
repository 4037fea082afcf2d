"""Store features joined with VidSitu labels, for users who train their own heads."""

from __future__ import annotations

from typing import Any

import torch

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
        self.vocab = vocab if vocab is not None else verb_vocab(VidSitu(root, "train"))
        self.verb_id = {v: i for i, v in enumerate(self.vocab)}
        clips = [c for c in self.labels.clips if c in store and c in self.labels.records
                 and store.entry(c).status == "ok"]
        super().__init__(store, clips)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = super().__getitem__(i)
        clip = item["video_id"]
        verbs = [self.verb_id.get(v, -1) for v in self.labels.majority_verbs(clip)]
        rels = [RELATIONS.index(r[0]) for r in self.labels.relations(clip, records=1)]
        assert len(rels) == len(RELATION_PAIRS)
        return {**item, "verbs": torch.tensor(verbs), "relations": torch.tensor(rels)}


def labelled_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """`pad_collate`, plus `verbs` [B, 5] and `relations` [B, 4]."""
    batch = pad_collate(items)
    batch["verbs"] = torch.stack([it["verbs"] for it in items])
    batch["relations"] = torch.stack([it["relations"] for it in items])
    return batch
