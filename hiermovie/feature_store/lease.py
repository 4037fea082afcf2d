"""One writing job per store at a time: a lease object next to the Zarr metadata.

Two `extract` jobs on one store would both write the same shards (the same plan names the same
shards) and could commit a shard whose arrays the other job is rewriting. A job therefore holds
a lease, a small JSON object it refreshes while it runs. Another job refuses to start while the
lease is alive: its holder's process exists (same host), or, from another host, it was
refreshed within `ttl` seconds. A lease left by a killed job is taken over. (Reading and writing
the lease is not atomic on object stores: two jobs started within the same instant can both get
it; the lease guards against the common mistake, not a deliberate race.)
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from typing import Any

from hiermovie.feature_store.schema import LEASE
from hiermovie.feature_store.writer import StoreError, filesystem


class Lease:
    def __init__(self, url: str, storage_options: dict | None = None, ttl: float = 60.0) -> None:
        self.fs, root = filesystem(url, storage_options)
        self.path = f"{root.rstrip('/')}/{LEASE}"
        self.url, self.ttl = url, ttl
        self.me = {"id": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid()}
        self.last = 0.0

    def _read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.fs.cat_file(self.path))
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return None

    def _alive(self, other: dict[str, Any]) -> bool:
        if other["host"] == self.me["host"]:
            if int(other["pid"]) == self.me["pid"]:
                return False  # left by an earlier job of this process that did not finish
            try:
                os.kill(int(other["pid"]), 0)
                return True
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return time.time() - float(other["refreshed"]) < self.ttl

    def check(self) -> None:
        """Raise if another live job holds the lease (cheap: one small read)."""
        other = self._read()
        if other and other["id"] != self.me["id"] and self._alive(other):
            raise StoreError(
                f"{self.url}: another job is writing this store (pid {other['pid']} on "
                f"{other['host']}, since {time.ctime(other['since'])}); wait for it to finish")

    def acquire(self) -> Lease:
        self.check()
        self.me["since"] = time.time()
        self.refresh(force=True)
        return self

    def refresh(self, force: bool = False) -> None:
        """Cheap to call often: writes at most every ttl/4 seconds. Once the job holds the
        lease, a location that stops taking writes is not the lease's to report: the job's
        own writes fail there and say so (exit 1)."""
        now = time.time()
        if force or now - self.last > self.ttl / 4:
            try:
                self.fs.pipe_file(self.path, json.dumps({**self.me, "refreshed": now}).encode())
            except OSError as e:
                if not self.last:  # acquiring: nothing has been done yet
                    raise StoreError(f"{self.url}: cannot write here ({e.strerror or e})"
                                     ) from None
            self.last = now

    def release(self) -> None:
        """Remove the lease if it is ours; a location gone or read-only by now keeps it (a
        later job takes over a dead job's lease)."""
        try:
            other = self._read()
            if other and other["id"] == self.me["id"]:
                self.fs.rm_file(self.path)
        except OSError:
            pass

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
