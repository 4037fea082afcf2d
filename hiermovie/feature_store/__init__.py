"""The Zarr feature store: the contract between `extract` and everything downstream."""

from hiermovie.feature_store.joined import JoinedStore, open_stores
from hiermovie.feature_store.reader import FeatureStore, VideoEntry, usable_videos
from hiermovie.feature_store.schema import Provenance, VideoRecord, shard_id_for
from hiermovie.feature_store.store_writer import plan_shards
from hiermovie.feature_store.writer import StoreError, complete_shards
from hiermovie.lazy import lazy_exports

# the torch Datasets load torch, interop h5py and xarray, only when asked for: writers and
# `store info` stay light
__getattr__ = lazy_exports(__name__, {
    "SequenceDataset": "dataset", "pad_collate": "dataset", "open_xarray": "interop",
    "export_hdf5": "interop", "export_npy_folder": "interop", "import_hdf5": "interop",
    "import_npy_folder": "interop"})

__all__ = [
    "FeatureStore", "JoinedStore", "Provenance", "SequenceDataset", "StoreError", "VideoEntry",
    "VideoRecord", "complete_shards", "export_hdf5", "export_npy_folder", "import_hdf5",
    "import_npy_folder", "open_stores", "open_xarray", "pad_collate", "plan_shards",
    "shard_id_for", "usable_videos",
]
