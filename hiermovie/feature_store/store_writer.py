"""The writable side of a `FeatureStore` opened with mode "a": the lease, the features'
identity and what the store already holds, in the order a writing job needs them:

    with FeatureStore.open(url, "a", storage_options=so) as store:
        store.check_free()                        # no other live job writes it (one small read)
        resume = store.resume(ids, retry_failed)  # what it holds of this input; nothing if absent
        store.check_settings(settings)            # a finished rerun: same settings as stored
        store.check_writable()                    # the location takes writes, before real work
        resume = store.prepare(provenance, ids, retry_failed)  # created, leased, re-read
        store.write(records)                      # one shard, committed; as often as needed
                                                  # leaving the block releases the lease

The steps before `prepare` are cheap and need no model, so a job refuses a busy, foreign or
read-only store, and ends a finished rerun, before it starts anything expensive. A job that
writes what it has at hand (`store import`) needs only `create` and `write`.
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
    _create_store,
    _uncommit_shard,
    _write_shard,
    filesystem,
    read_root_attrs,
    refuse_foreign,
    refuse_other_features,
)


@dataclass
class Resume:
    """What a store holds of a job's input."""

    done: set[str]  # committed shard names
    stored: set[str]  # video ids stored (ok or failed)
    earlier_failures: dict[str, str]  # video id -> error, of this input's videos
    redo: list[str]  # committed shards to rewrite (retry_failed)


class WritableSide:
    """The writing steps of a store opened with mode "a" (mixed into `FeatureStore`)."""

    url: str
    so: dict | None
    mode: str

    def _open_writable(self) -> None:
        self.fs, self.path = filesystem(self.url, self.so)
        self.lease = Lease(self.url, self.so)
        self.leased = False

    def _writable(self) -> None:
        if self.mode != "a":
            raise StoreError(f"{self.url}: opened read-only; open it with mode 'a' to write")

    def check_free(self) -> None:
        """Refuse a store that another live job is writing."""
        self._writable()
        if self.fs.exists(self.path):
            self.lease.check()

    def resume(self, wanted: set[str], retry_failed: bool) -> Resume:
        """The store's state for the videos `wanted`, its index read again; with
        `retry_failed`, the shards holding their failures are to be redone and those videos
        are not counted as stored."""
        self._writable()
        try:
            self.reload()
        except StoreError:
            refuse_foreign(self.url, self.so)  # a file or someone's folder: refused now
            return Resume(set(), set(), {}, [])
        return self._state(wanted, retry_failed)

    def _state(self, wanted: set[str], retry_failed: bool) -> Resume:
        """`resume` from the index as last read."""
        failed = {v: self.entry(v).error for v in self.videos(status="failed") if v in wanted}
        done, stored = set(self.shard_names), set(self.videos(status=None))
        if not (retry_failed and failed):
            return Resume(done, stored, failed, [])
        names = self.shard_names
        redo = sorted({names[self.entry(v).shard] for v in failed})
        again = {v for v in stored if names[self.entry(v).shard] in redo}
        return Resume(done - set(redo), stored - again, {}, redo)

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Refuse a rerun whose settings (some fields of the provenance's identity) differ from
        the store's, as `create` would once the model is loaded."""
        stored = read_root_attrs(self.url, self.so)["provenance"]
        refuse_other_features(self.url, stored, settings, partial=True)

    def check_writable(self) -> None:
        """Refuse a location that takes no writes (read-only, full, denied, gone): one small
        file written and removed there (a store not yet created: its folder is made for the
        test and removed again)."""
        self._writable()
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

    def create(self, provenance: Provenance, *, chunk_segments: int = 4096,
               compressor: Compressor = "none") -> None:
        """Create the store (or check that it holds features of this provenance), take its
        lease and read its index: from here on this job writes the store."""
        self._writable()
        if not self.leased:
            self.lease.check()  # before anything is written: a live job's store is its own
        _create_store(self.url, provenance, chunk_segments=chunk_segments,
                      compressor=compressor, storage_options=self.so)
        if not self.leased:
            self.lease.acquire()
            self.leased = True
        self.reload()

    def prepare(self, provenance: Provenance, wanted: set[str], retry_failed: bool, *,
                chunk_segments: int = 4096, compressor: Compressor = "none") -> Resume:
        """`create` (which reads the index again: another job may have written since
        `resume`), then the store's state; the shards to redo are uncommitted here."""
        self.create(provenance, chunk_segments=chunk_segments, compressor=compressor)
        resume = self._state(wanted, retry_failed)
        for name in resume.redo:
            _uncommit_shard(self.url, name, self.so)
        return resume

    def write(self, records: list[VideoRecord], tries: int = 3) -> str:
        """Write and commit one shard; returns its id. A transient error is retried, never a
        full disk or a location that refuses writes."""
        self._writable()
        if not self.leased:
            raise StoreError(f"{self.url}: create the store (or prepare it) before writing")
        for attempt in range(tries - 1):
            try:
                return _write_shard(self.url, records, storage_options=self.so)
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                    raise
                time.sleep(2**attempt)
        return _write_shard(self.url, records, storage_options=self.so)

    def refresh_lease(self) -> None:
        """Keep the lease alive (cheap: writes at most every few seconds)."""
        if self.leased:
            self.lease.refresh()

    def close(self) -> None:
        """Release the lease (a store opened for reading: nothing to do)."""
        if self.mode == "a" and self.leased:
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
