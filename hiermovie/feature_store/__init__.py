"""The Zarr feature store: the contract between `extract` and everything downstream."""

from hiermovie.feature_store.dataset import SequenceDataset, pad_collate
from hiermovie.feature_store.reader import FeatureStore, VideoEntry
from hiermovie.feature_store.schema import Provenance, VideoRecord, shard_id_for
from hiermovie.feature_store.writer import StoreError, complete_shards, create_store, write_shard

__all__ = [
    "FeatureStore", "Provenance", "SequenceDataset", "StoreError", "VideoEntry", "VideoRecord",
    "complete_shards", "create_store", "pad_collate", "shard_id_for", "write_shard",
]
