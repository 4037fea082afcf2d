"""Peak memory of every process of an extract job against the film's length.

    .venv/bin/python benchmarks/memory.py --work runs/memory                 # 1, 20, 120 min
    .venv/bin/python benchmarks/memory.py --work runs/memory --minutes 1,20

Each take is one low-resolution video (64x48, 15 fps, a moving pattern), extracted alone by
`hiermovie extract` (a fresh job and local Ray each time; sliding 2-s windows, tiny3d, 8
frames). A sampler reads every process of the job's tree every 0.1 s; a process's peak is its
kernel-kept high-water mark (VmHWM, so nothing between samples is missed), and its private
memory (RssAnon + RssFile, sampled) apart from the pages of Ray's shared object store it touched
(RssShmem: the store is one shared, fixed-size region, 1 GiB in the embedded default, so a
worker that writes many parts touches more of it without owning more). Processes are grouped
by role (driver, decode workers, model actors, Ray's own); per role the largest peak, and its
ratio to the 1-min take's (the bound: memory that does not grow with length).
Writes WORK/memory.json and WORK/memory.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from hiermovie.datasets.video_io import write_video

ROLES = {"ray::decode_item": "decode", "ray::ModelWorker": "model", "ray_reaper": "reaper"}
FPS, SIZE = 15, (48, 64)


def make_take(path: Path, minutes: int) -> Path:
    if not path.exists():
        base = np.random.default_rng(minutes).integers(0, 255, (*SIZE, 3), dtype=np.uint8)
        n = minutes * 60 * FPS
        write_video(path, (np.roll(base, 3 * i, 1) for i in range(n)), FPS)
    return path


def role(cmds: set[str], is_driver: bool) -> str:
    """A worker process is what it ran (it shows as ray::IDLE between tasks)."""
    if is_driver:
        return "driver"
    return next((r for k, r in ROLES.items() if any(k in c for c in cmds)), "ray's own")


def status_kb(pid: int) -> dict[str, int]:
    """VmHWM (peak RSS), RssAnon (private), RssFile and RssShmem (pages of Ray's object store
    the process touched: shared, bounded by the store's size, not the process's own)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmHWM", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(line.split()[1])
    return out


class Sampler:
    """Per process: its role (the last one seen: a worker turns from IDLE to a task) and peak."""

    def __init__(self, driver: int) -> None:
        self.driver, self.stop = driver, False
        self.peaks: dict[int, dict[str, int]] = {}
        self.cmds: dict[int, set[str]] = {}
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        root = psutil.Process(self.driver)
        while not self.stop:
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for p in procs:
                try:
                    now, peak = status_kb(p.pid), self.peaks.setdefault(p.pid, {})
                    for k, v in now.items():
                        peak[k] = max(peak.get(k, 0), v)
                    own = now.get("RssAnon", 0) + now.get("RssFile", 0)
                    peak["own"] = max(peak.get("own", 0), own)
                    self.cmds.setdefault(p.pid, set()).add(" ".join(p.cmdline()))
                except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
                    pass
            time.sleep(0.1)

    def by_role(self, key: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, peak in self.peaks.items():
            r = role(self.cmds.get(pid, set()), pid == self.driver)
            out[r] = max(out.get(r, 0.0), peak.get(key, 0) / 1024)
        return out


def run_take(video: Path, store: Path) -> tuple[dict[str, float], float, int]:
    import shutil

    shutil.rmtree(store, ignore_errors=True)
    cmd = [sys.executable, "-m", "hiermovie.workflows.cli", "extract", "--input",
           str(video.parent), "--store", str(store), "--backbone.name", "tiny3d/8",
           "--plan.kind", "sliding", "--plan.window_s", "2", "--plan.stride_s", "2",
           "--plan.num_frames", "8", "--progress", "false", "--decode_timeout_per_s", "10"]
    t = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(proc.pid)
    out = proc.communicate()[0]
    sampler.stop = True
    sampler.thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"extract failed ({proc.returncode}):\n{out[-2000:]}")
    from hiermovie.feature_store import FeatureStore

    segments = FeatureStore(str(store)).get(video.stem).shape[0]
    return ({k: sampler.by_role(k) for k in ("VmHWM", "own", "RssShmem")}, time.time() - t,
            segments)


KINDS = {"own": "peak private memory (RssAnon + RssFile)",
         "VmHWM": "peak RSS (VmHWM: with the object-store pages it touched)",
         "RssShmem": "peak shared object-store pages (RssShmem)"}


def table(rows: list[dict], kind: str) -> tuple[list[str], float]:
    base = rows[0]["peak_mib"][kind]
    roles = sorted(base)
    lines = [f"{KINDS[kind]}:", "", "| take | segments | job s | " + " | ".join(roles) + " |",
             "|---|---|---|" + "---|" * len(roles)]
    for row in rows:
        mib = row["peak_mib"][kind]
        cells = [f"{mib.get(r, 0):.0f} ({mib.get(r, 0) / base[r]:.2f}x)" if base[r] else "-"
                 for r in roles]
        lines.append(f"| {row['minutes']} min | {row['segments']} | {row['seconds']} | "
                     + " | ".join(cells) + " |")
    worst = max(row["peak_mib"][kind].get(r, 0) / base[r] for row in rows for r in roles
                if base[r])
    lines += ["", f"Largest ratio to the {rows[0]['minutes']}-min take: {worst:.2f}", ""]
    return lines, worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--minutes", default="1,20,120")
    a = ap.parse_args()
    work = Path(a.work)
    rows = []
    for m in [int(x) for x in a.minutes.split(",")]:
        video = make_take(work / f"take{m}" / f"take{m}.mp4", m)
        peaks, secs, segs = run_take(video, work / f"take{m}.zarr")
        rows.append({"minutes": m, "segments": segs, "seconds": round(secs, 1),
                     "peak_mib": {k: {r: round(v, 1) for r, v in sorted(by.items())}
                                  for k, by in peaks.items()}})
        print(json.dumps(rows[-1]), flush=True)
    lines, worst = [], {}
    for kind in KINDS:
        part, worst[kind] = table(rows, kind)
        lines += part
    (work / "memory.json").write_text(json.dumps({"rows": rows, "worst_ratio": worst}, indent=1))
    (work / "memory.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
