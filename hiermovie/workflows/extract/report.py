"""What an `extract` run did: finished videos grouped by shard, the JSONL log, the report.

Exit codes of `hiermovie extract` (README, "Exit codes"):
0 done (videos stored, or nothing left to do); 1 faults not caused by the videos (their shards
were left unwritten: rerun); 2 a configuration or input error, e.g. an empty folder;
3 videos failed: every video of this run (nothing stored), or any with `--strict`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from hiermovie.datasets import VideoItem
from hiermovie.feature_store import VideoRecord
from hiermovie.feature_store.schema import unstorable

EXIT_OK, EXIT_FAULTS, EXIT_VIDEOS_FAILED = 0, 1, 3


class ExtractRun:
    """Per-shard bookkeeping of finished videos, the log, and the final report.

    The log file is opened on creation; `close()` (called on every exit path) closes it.
    """

    def __init__(self, shards: list[list[str]], tokens: int, dim: int, frames: int,
                 report_path: Path, dtype: str = "float16") -> None:
        self.shards, self.tokens, self.dim, self.frames = shards, tokens, dim, frames
        self.dtype = dtype
        self.clamped: dict[str, int] = {}  # video -> segments cut at the video's end
        self.report_path = report_path
        self.t0 = time.time()
        self.records: dict[int, dict[str, VideoRecord]] = {}
        self.poisoned: set[int] = set()  # shards left unwritten for a rerun to redo
        self.segments = self.ok = 0  # what committed shards hold: the summary counts only that
        self.decoded_segments = 0  # the progress bar's rate
        self.unwritten = 0  # finished videos whose shard write failed
        self.failures: dict[str, str] = {}
        self.faults: list[str] = []
        log = report_path.with_suffix(".jsonl")
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log, "a")  # noqa: SIM115 (closed by close(), on every exit path)

    def finish(self, shard: int, item: VideoItem, meta: dict, feats: np.ndarray | None) -> None:
        """Record one video's outcome; `meta["fault"]` marks failures that are not its own."""
        if meta.get("clamped"):
            self.clamped[item.video_id] = int(meta["clamped"])
        if meta["status"] == "ok" and feats is not None and not np.isfinite(feats).all():
            meta = {**meta, "status": "failed", "fault": True,
                    "error": f"{item.path}: backbone produced NaN/Inf features"}
        elif meta["status"] == "ok" and feats is not None and (
                problem := unstorable(feats, self.dtype)):  # the video's own: no rerun
            meta = {**meta, "status": "failed", "error": f"{item.path}: features {problem}"
                    + (" (--dtype float32 stores them)" if "Inf" in problem else "")}
        if meta["status"] == "ok" and feats is not None:
            rec = VideoRecord(video_id=item.video_id, features=feats, start_s=meta["start_s"],
                              end_s=meta["end_s"], frame_indices=meta["frame_indices"],
                              duration_s=meta["duration_s"], fps=meta["fps"],
                              num_frames=meta["num_frames"])
            self.decoded_segments += rec.num_segments
        else:
            rec = VideoRecord.failed(item.video_id, meta["error"], tokens=self.tokens,
                                     dim=self.dim, frames=self.frames)
            if meta.get("fault"):  # not the video's fault: leave its shard for a rerun
                self.faults.append(f"{item.video_id}: {meta['error']}")
                self.poisoned.add(shard)
            else:
                self.failures[item.video_id] = meta["error"]
        self.records.setdefault(shard, {})[item.video_id] = rec
        self._log({"t": round(time.time() - self.t0, 3), "video_id": item.video_id,
                   "status": rec.status, "segments": rec.num_segments,
                   "decode_s": round(meta.get("decode_s", 0.0), 4), "error": rec.error})

    def _log(self, row: dict[str, Any]) -> None:
        if self.log is None:
            return
        try:  # the log usually sits beside the store: a full disk must not end the job
            self.log.write(json.dumps(row) + "\n")
            self.log.flush()
        except OSError as e:
            self.faults.append(f"log {self.log.name}: {e}")
            self.log = None

    def full_shards(self) -> list[int]:
        """Shards whose videos are all finished, removed from the bookkeeping; poisoned ones
        are dropped (left for a rerun)."""
        full = [s for s, recs in self.records.items() if len(recs) == len(self.shards[s])]
        for s in full:
            if s in self.poisoned:
                del self.records[s]
        return [s for s in full if s not in self.poisoned]

    def committed(self, records: list[VideoRecord]) -> None:
        """A shard holding `records` is committed: its ok videos count as stored."""
        stored = [r for r in records if r.status == "ok"]
        self.ok += len(stored)
        self.segments += sum(r.num_segments for r in stored)

    def take(self, shard: int) -> list[VideoRecord]:
        recs = self.records.pop(shard)
        return [recs[v] for v in self.shards[shard]]

    def close(self) -> None:
        if self.log is not None:
            try:
                self.log.close()
            except OSError as e:
                self.faults.append(f"log {self.log.name}: {e}")
            self.log = None


def report(run: ExtractRun | None, *, store: str, total: int, stored_before: int,
           earlier_failures: dict[str, str], skipped_files: dict[str, str], strict: bool,
           report_path: Path) -> int:
    """Write the JSON report, print the summary, return the exit code. `run` is None when
    nothing was left to do."""
    ok, failures = (run.ok, run.failures) if run else (0, {})
    clamped = run.clamped if run else {}
    faults = run.faults if run else []
    segments = run.segments if run else 0
    secs = time.time() - run.t0 if run else 0.0
    rep = {
        "store": store, "videos": total, "skipped_already_stored": stored_before,
        "ok": ok, "failed": len(failures), "not_written": run.unwritten if run else 0,
        "segments": segments, "seconds": round(secs, 2),
        "videos_per_s": round((ok + len(failures)) / max(secs, 1e-9), 3),
        "segments_per_s": round(segments / max(secs, 1e-9), 3),
        "faults": faults, "failures": failures, "failed_in_earlier_runs": earlier_failures,
        "skipped_files": skipped_files, "segments_clamped_at_video_end": clamped,
    }
    try:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(rep, indent=2))
    except OSError as e:
        faults.append(f"report {report_path}: {e}")
    print(f"extract: {ok} ok, {len(failures)} failed, {stored_before} already stored, "
          f"{segments} segments in {secs:.1f} s ({rep['segments_per_s']} segments/s); "
          f"report: {report_path}")
    for vid, err in list(failures.items())[:10]:
        print(f"  failed {vid}: {err}")
    if clamped:
        print(f"  {sum(clamped.values())} segment(s) of {len(clamped)} video(s) ended past the "
              "video's end and were cut there (listed in the report; --strict true refuses "
              "them)")
    if run and run.unwritten:
        print(f"  {run.unwritten} finished video(s) not stored: their shards could not be "
              "written (faults below); rerun the same command")
    if skipped_files:
        shown = "; ".join(f"{p} ({why})" for p, why in list(skipped_files.items())[:5])
        print(f"  skipped {len(skipped_files)} entries that are not videos: {shown}"
              f"{' ...' if len(skipped_files) > 5 else ''} (all in the report)")
    if earlier_failures:
        print(f"  {len(earlier_failures)} video(s) of this input failed in earlier runs "
              "(listed in the report; --retry_failed true tries them again)")
    if faults:
        for fault in faults[:5]:
            print(f"  fault: {fault}")
        print(f"  {len(faults)} fault(s) (not the videos' fault); their shards were not "
              "written: rerun the same command to redo them")
        return EXIT_FAULTS
    if failures and not ok:
        print("  nothing was stored: every video of this run failed")
        return EXIT_VIDEOS_FAILED
    return EXIT_VIDEOS_FAILED if strict and (failures or earlier_failures) else EXIT_OK
