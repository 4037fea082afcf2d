"""The Zarr feature store: the contract between `extract` and everything downstream."""

from typing import Any

from hiermovie.feature_store.reader import FeatureStore, VideoEntry
from hiermovie.feature_store.schema import Provenance, VideoRecord, shard_id_for
from hiermovie.feature_store.writer import StoreError, complete_shards, create_store, write_shard


def __getattr__(name: str) -> Any:
    # the torch Datasets load torch only when asked for: writers and `store info` stay light
    if name in ("SequenceDataset", "pad_collate"):
        from hiermovie.feature_store import dataset

        return getattr(dataset, name)
    raise AttributeError(name)


__all__ = [
    "FeatureStore", "Provenance", "SequenceDataset", "StoreError", "VideoEntry", "VideoRecord",
    "complete_shards", "create_store", "pad_collate", "shard_id_for", "write_shard",
]
