"""A writing job's handle on its store: one filesystem, the lease, the features' identity and
what the store already holds, in the order a job needs them:

    store = StoreWriter(url, storage_options)
    store.check_free()                        # no other live job writes it (one small read)
    resume = store.resume(ids, retry_failed)  # what it holds of this input; nothing if absent
    store.check_settings(settings)            # a finished rerun: same settings as stored
    store.check_writable()                    # the location takes writes, before any real work
    resume = store.open(provenance, ids, retry_failed)  # created or checked, leased, re-read
    store.write(records)                      # one shard, committed; as often as needed
    store.close()                             # the lease released

The steps before `open` are cheap and need no model, so a job refuses a busy, foreign or
read-only store, and ends a finished rerun, before it starts anything expensive.
"""

from __future__ import annotations

import errno
import time
import uuid
from dataclasses import dataclass
from typing import Any

from hiermovie.feature_store.lease import Lease
from hiermovie.feature_store.schema import Provenance, VideoRecord, shard_id_for
from hiermovie.feature_store.writer import (
    Compressor,
    StoreError,
    create_store,
    filesystem,
    read_root_attrs,
    refuse_foreign,
    refuse_other_features,
    uncommit_shard,
    write_shard,
)


@dataclass
class Resume:
    """What a store holds of a job's input."""

    done: set[str]  # committed shard names
    stored: set[str]  # video ids stored (ok or failed)
    earlier_failures: dict[str, str]  # video id -> error, of this input's videos
    redo: list[str]  # committed shards to rewrite (retry_failed)


class StoreWriter:
    def __init__(self, url: str, storage_options: dict | None = None, *,
                 chunk_segments: int = 4096, compressor: Compressor = "none") -> None:
        self.url, self.so = url, storage_options or None
        self.chunk_segments, self.compressor = chunk_segments, compressor
        self.fs, self.path = filesystem(url, self.so)
        self.lease = Lease(url, self.so)
        self.leased = False

    def check_free(self) -> None:
        """Refuse a store that another live job is writing."""
        if self.fs.exists(self.path):
            self.lease.check()

    def resume(self, wanted: set[str], retry_failed: bool) -> Resume:
        """The store's state for the videos `wanted`; with `retry_failed`, the shards holding
        their failures are to be redone and those videos are not counted as stored."""
        from hiermovie.feature_store.reader import FeatureStore

        try:
            store = FeatureStore(self.url, storage_options=self.so, cache_bytes=0)
        except StoreError:
            refuse_foreign(self.url, self.so)  # a file or someone's folder: refused now
            return Resume(set(), set(), {}, [])
        failed = {v: store.entry(v).error for v in store.videos(status="failed") if v in wanted}
        done, stored = set(store.shard_names), set(store.videos(status=None))
        if not (retry_failed and failed):
            return Resume(done, stored, failed, [])
        names = store.shard_names
        redo = sorted({names[store.entry(v).shard] for v in failed})
        again = {v for v in stored if names[store.entry(v).shard] in redo}
        return Resume(done - set(redo), stored - again, {}, redo)

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Refuse a rerun whose settings (some fields of the provenance's identity) differ from
        the store's, as `open` would once the model is loaded."""
        stored = read_root_attrs(self.url, self.so)["provenance"]
        refuse_other_features(self.url, stored, settings, partial=True)

    def check_writable(self) -> None:
        """Refuse a location that takes no writes (read-only, full, denied, gone): one small
        file written and removed there (a store not yet created: its folder is made for the
        test and removed again)."""
        root, made = self.path.rstrip("/"), False
        try:
            if not self.fs.exists(root):
                self.fs.makedirs(root, exist_ok=True)
                made = True
            probe = f"{root}/.hiermovie-write-check-{uuid.uuid4().hex}"
            self.fs.pipe_file(probe, b"")
            self.fs.rm_file(probe)
            if made:
                self.fs.rmdir(root)
        except OSError as e:
            raise StoreError(f"{self.url}: cannot write the store there ({e.strerror or e}); "
                             "give a writable location") from None

    def open(self, provenance: Provenance, wanted: set[str], retry_failed: bool) -> Resume:
        """Create the store (or check that it holds features of this provenance), take its
        lease and read its state again: another job may have written since `resume`. The
        shards to redo are uncommitted here."""
        create_store(self.url, provenance, chunk_segments=self.chunk_segments,
                     compressor=self.compressor, storage_options=self.so)
        self.lease.acquire()
        self.leased = True
        resume = self.resume(wanted, retry_failed)
        for name in resume.redo:
            uncommit_shard(self.url, name, self.so)
        return resume

    def write(self, records: list[VideoRecord], tries: int = 3) -> str:
        """Write and commit one shard; returns its id. A transient error is retried, never a
        full disk or a location that refuses writes."""
        for attempt in range(tries - 1):
            try:
                return write_shard(self.url, records, storage_options=self.so)
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                    raise
                time.sleep(2**attempt)
        return write_shard(self.url, records, storage_options=self.so)

    def refresh(self) -> None:
        """Keep the lease alive (cheap: writes at most every few seconds)."""
        self.lease.refresh()

    def close(self) -> None:
        if self.leased:
            self.lease.release()
            self.leased = False


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
