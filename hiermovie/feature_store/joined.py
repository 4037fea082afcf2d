"""Several stores read as one: each segment's features concatenated across them, as the seed's
LVU table joins an instance model's features with a scene model's ("Object Transformer ++")."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from hiermovie.feature_store.reader import FeatureStore, VideoEntry
from hiermovie.feature_store.writer import StoreError


class JoinedStore:
    """The read side of `FeatureStore` over stores whose segments line up: the videos all of
    them hold, each segment's tokens the concatenation of theirs (D = the sum of their D).

    The segments must be the same in every store: the same count and start times (to 1 ms) for
    every shared video, else one line naming the first video that differs. Videos not in every
    store are left out and counted on stderr."""

    def __init__(self, stores: list[FeatureStore]) -> None:
        if len(stores) < 2:
            raise ValueError("a JoinedStore joins two stores or more")
        self.stores = stores
        self.url = ",".join(s.url for s in stores)
        first = stores[0]
        ks = {s.url: s.provenance.tokens_per_segment for s in stores}
        if len(set(ks.values())) > 1:
            raise StoreError(f"stores with different tokens per segment cannot be joined: {ks}")
        self.provenance = replace(first.provenance,
                                  backbone="+".join(s.provenance.backbone for s in stores),
                                  dim=sum(s.provenance.dim for s in stores))
        others = [set(s.videos()) for s in stores[1:]]
        self._videos = [v for v in first.videos() if all(v in o for o in others)]
        self._have = set(self._videos)
        left = sum(len(s.videos()) for s in stores) - len(stores) * len(self._videos)
        if left:
            print(f"store: {left} video(s) not in every one of {self.url} are left out",
                  file=sys.stderr)
        for v in self._videos:
            self._check_lined_up(v)

    def _check_lined_up(self, video_id: str) -> None:
        start = self.stores[0].times(video_id)[0]
        for s in self.stores[1:]:
            other = s.times(video_id)[0]
            if len(other) != len(start) or not np.allclose(other, start, atol=1e-3):
                raise StoreError(
                    f"{self.stores[0].url} and {s.url}: the segments of video {video_id!r} "
                    f"do not line up ({len(start)} starting at {np.round(start[:5], 3).tolist()}"
                    f" vs {len(other)} at {np.round(other[:5], 3).tolist()}); joined stores "
                    "must be extracted with the same plan")

    def __len__(self) -> int:
        return len(self._videos)

    def __contains__(self, video_id: str) -> bool:
        return video_id in self._have

    def videos(self, status: str | None = "ok") -> list[str]:
        return list(self._videos) if status == "ok" else self.stores[0].videos(status)

    def entry(self, video_id: str) -> VideoEntry:
        return self.stores[0].entry(video_id)

    def get(self, video_id: str) -> np.ndarray:
        parts = [s.get(video_id) for s in self.stores]
        return np.concatenate(parts, axis=-1).astype(np.result_type(*parts), copy=False)

    def times(self, video_id: str) -> tuple[np.ndarray, np.ndarray]:
        return self.stores[0].times(video_id)

    def frame_indices(self, video_id: str) -> np.ndarray:
        return self.stores[0].frame_indices(video_id)

    def iter_videos(self, status: str = "ok") -> Iterator[tuple[str, np.ndarray]]:
        for v in self.videos(status):
            yield v, self.get(v)

    def unusable(self) -> dict[str, str]:
        return {v: f"{s.url}: {why}" for s in self.stores for v, why in s.unusable().items()
                if v in self._have}


def open_stores(urls: str, storage_options: dict | None = None) -> FeatureStore | JoinedStore:
    """`a.zarr` as a store; `a.zarr,b.zarr` as one store of their features joined per
    segment."""
    parts = [u for u in urls.split(",") if u]
    stores = [FeatureStore(u, storage_options=storage_options) for u in parts]
    return stores[0] if len(stores) == 1 else JoinedStore(stores)
