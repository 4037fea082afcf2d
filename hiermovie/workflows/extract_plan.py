"""Planning an extract run from what the store holds: shards, resume, retries."""

from __future__ import annotations

from dataclasses import dataclass

from hiermovie.feature_store import StoreError, shard_id_for
from hiermovie.feature_store.writer import refuse_foreign


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
