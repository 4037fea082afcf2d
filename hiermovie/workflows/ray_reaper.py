"""Ray's processes go with the driver that started them, even when it is killed (-9).

Ray ties the GCS and the raylet to the driver (they die with it), but processes the raylet had
started (its agents, idle workers) can outlive both by a minute or more, ~90 MB each, beside
the rerun a user starts at once. A reaper process, in its own session so that it survives the
driver, keeps a snapshot of the driver's process tree; when the driver is gone it kills every
process of that tree still alive (psutil tells a pid reused by another process apart by its
start time). It exits by itself right after, or when the driver ends normally.

    python -m hiermovie.workflows.ray_reaper DRIVER_PID
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

POLL_S = 0.2


_REAPER: subprocess.Popen | None = None


def watch_this_process() -> None:
    """Start this process's reaper (once): its Ray processes are killed as soon as it is
    gone."""
    global _REAPER
    if _REAPER is None or _REAPER.poll() is not None:
        _REAPER = subprocess.Popen([sys.executable, "-m", "hiermovie.workflows.ray_reaper",
                                    str(psutil.Process().pid)], start_new_session=True,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)


def watch(driver_pid: int) -> int:
    """Snapshot the driver's tree until the driver is gone; then kill what is left of it."""
    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return 0
    tree: dict[int, psutil.Process] = {}
    me = psutil.Process().pid  # a child of the driver too
    while driver.is_running():
        try:
            tree.update({p.pid: p for p in driver.children(recursive=True) if p.pid != me})
        except psutil.NoSuchProcess:
            break
        time.sleep(POLL_S)
    alive = [p for p in tree.values() if p.is_running()]  # same pid and start time
    for p in list(alive):  # and whatever they started since the last snapshot
        try:
            alive += [c for c in p.children(recursive=True) if c.pid != me]
        except psutil.NoSuchProcess:
            pass
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(watch(int(sys.argv[1])))
