"""A shard writer SIGKILLed at every step of its writes, the commit included.

The harness below writes three shards into a store, skipping those already committed (as
`extract` resumes). Every object write goes through zarr's LocalStore `_put`, which the harness
slows and announces, so the test can kill the process just before or just after any one write:
the store must then open, list only complete shards, and be completed by a rerun into a store
equal, file for file and byte for byte, to an uninterrupted one.
"""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from hiermovie.feature_store import FeatureStore, complete_shards
from hiermovie.feature_store.schema import Provenance, is_committed
from tests.conftest import make_record, write_store
from tests.reliability import record

ROOT = Path(__file__).resolve().parents[1]
SHARDS = [["a", "b"], ["c", "d"], ["e", "f"]]
HARNESS = r"""
import sys, time
import numpy as np
from hiermovie.feature_store import FeatureStore, shard_id_for
from hiermovie.feature_store.schema import Provenance, VideoRecord

url, slow = sys.argv[1], float(sys.argv[2])
if slow:
    import zarr.storage._local as local
    real_put = local._put

    import threading
    lock = threading.Lock()

    def put(path, value, exclusive=False):  # zarr writes from several threads at once
        with lock:
            sys.stdout.write(f"put {path}\n")
            sys.stdout.flush()
        time.sleep(slow)
        n = real_put(path, value, exclusive)
        time.sleep(slow)
        return n

    local._put = put


def rec(vid, n):
    rng = np.random.default_rng(ord(vid))
    start = np.arange(n) * 2.0
    return VideoRecord(vid, rng.standard_normal((n, 1, 8)).astype(np.float32), start,
                       start + 2.0, np.arange(n * 4).reshape(n, 4), 2.0 * n, 30.0, 60 * n)


with FeatureStore.open(url, "a") as store:  # as `store import` writes
    store.create(Provenance(backbone="test", dim=8, dtype="float32", created="fixed"))
    done = set(store.shard_names)
    for part in SHARDS:
        if shard_id_for(part) not in done:
            store.write([rec(v, 1 + i) for i, v in enumerate(part)])
print("finished", flush=True)
""".replace("SHARDS", repr(SHARDS))


def _run(url: Path, slow: float = 0.0, kill_after: int | None = None, rng=None) -> str | None:
    """Run the harness; with `kill_after`, SIGKILL it after that many announced writes plus a
    random part of the pause around the write. Returns the write it was killed at."""
    proc = subprocess.Popen([sys.executable, "-c", HARNESS, str(url), str(slow)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    seen, at = 0, None
    for line in proc.stdout:
        if kill_after is not None and line.startswith("put "):
            seen += 1
            if seen == kill_after:
                at = line[4:].strip()
                # before or after the real write, or (rarely) inside it
                time.sleep(rng.uniform(0.0, 2 * slow))
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait()
    proc.stdout.close()
    if kill_after is None:
        assert proc.returncode == 0
    return at


def _tree(url: Path) -> dict[str, bytes]:
    return {str(p.relative_to(url)): p.read_bytes() for p in sorted(url.rglob("*"))
            if p.is_file()}


# CI kills at every commit write and at 3 other writes; the full fault suite (`make
# reliability`) at every commit write twice and at 20 other writes
@pytest.mark.parametrize("repeat, others", [(1, 3), pytest.param(2, 20, marks=pytest.mark.slow)])
def test_writer_killed_at_every_step_of_a_commit(tmp_path, repeat, others):
    ref = tmp_path / "ref.zarr"
    _run(ref)
    want = _tree(ref)
    probe = tmp_path / "probe.zarr"
    proc = subprocess.run([sys.executable, "-c", HARNESS, str(probe), "0.0001"], cwd=ROOT,
                          capture_output=True, text=True)
    writes = [ln[4:][len(str(probe)):] for ln in proc.stdout.splitlines()
              if ln.startswith("put ")]
    # zarr rewrites (if-not-exists) a group's zarr.json for every array created in it: a
    # shard's first zarr.json write creates it, its last is the commit
    groups = {w for w in writes if w.count("/") == 3 and w.startswith("/shards/")}
    created = {i + 1 for g in groups for i, w in enumerate(writes) if w == g and
               i == writes.index(g)}
    commits = {max(i + 1 for i, w in enumerate(writes) if w == g) for g in groups}
    assert len(commits) == len(SHARDS)
    # repeated, a commit is killed at another point: the pause around the write is random
    targets = sorted(commits) * repeat + list(range(1, len(writes) + 1, len(writes) // others))
    rng = random.Random(0)
    kinds: dict[str, int] = {}
    for n, k in enumerate(targets):
        url = tmp_path / f"k{n}.zarr"
        at = _run(url, slow=0.005, kill_after=k, rng=rng)
        assert at is not None
        step = ("commit" if k in commits else "shard created" if k in created
                else "array data or metadata")
        kinds[step] = kinds.get(step, 0) + 1
        if (url / "zarr.json").exists():  # killed after creating the store
            store = FeatureStore(str(url))  # opens: never a torn shard
            listed = set(store.shard_names)
            assert listed == set(complete_shards(str(url)))
            for name in listed:
                group = zarr.open_group(str(url / "shards" / name), mode="r")
                assert is_committed(group.attrs)
                for vid in store.videos(status=None):
                    assert store.get(vid).shape[0] == store.entry(vid).num_segments
        _run(url)  # the rerun resumes
        assert _tree(url) == want, f"kill {n} at write {k} ({at}): rerun differs"
    assert len(targets) >= 3 * repeat + others and kinds.get("commit", 0) >= 3 * repeat
    record("Faults", "shard writer SIGKILLed before/after each write of three shards (commit "
           f"writes {kinds['commit']}x, other writes {len(targets) - kinds['commit']}x)",
           len(targets), "every store opened and listed only complete shards; each rerun "
           "completed it, byte for byte equal to an uninterrupted store")


def test_inconsistent_commit_record_counts_as_incomplete(tmp_path):
    """A shard marked complete but without its index (as older versions could leave it) is
    invisible to readers and rewritten by the next writer."""
    url = write_store(tmp_path / "s.zarr", Provenance(backbone="test", dim=8, dtype="float32"),
                      [make_record("x", 2)])
    sid = complete_shards(url)[0]
    group = zarr.open_group(f"{url}/shards/{sid}", mode="a")
    attrs = dict(group.attrs)
    group.attrs.put({"complete": True, "videos": 1})  # torn: no index
    assert complete_shards(url) == [] and FeatureStore(url).videos() == []
    write_store(url, Provenance(backbone="test", dim=8, dtype="float32"), [make_record("x", 2)])
    assert json.loads(json.dumps(dict(zarr.open_group(f"{url}/shards/{sid}").attrs))) == \
        json.loads(json.dumps(attrs))
    np.testing.assert_array_equal(FeatureStore(url).get("x"), make_record("x", 2).features)
    record("Faults", "a shard marked complete without its index (torn commit of older "
           "versions)", 1, "treated as incomplete by readers; the rerun rewrote it")
