"""Video lists: a folder of videos, or a CSV / JSONL manifest (id, path, optional segments)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

VIDEO_SUFFIXES = {".mp4", ".m4v", ".3gp", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts",
                  ".mpg", ".mpeg", ".vob", ".flv", ".wmv"}


class ManifestError(ValueError):
    """A manifest that cannot be used; names the file and the reason."""


@dataclass(frozen=True)
class VideoItem:
    video_id: str
    path: str
    segments: tuple[tuple[float, float], ...] | None = None  # explicit (start_s, end_s)


def _check_ids(items: list[VideoItem], source: str) -> list[VideoItem]:
    seen: set[str] = set()
    for it in items:
        if not it.video_id:
            raise ManifestError(f"{source}: empty video id for {it.path!r}")
        if it.video_id in seen:
            raise ManifestError(f"{source}: duplicate video id {it.video_id!r}")
        seen.add(it.video_id)
    return items


def non_videos(folder: str | Path) -> list[str]:
    """Files under `folder` that `from_folder` leaves out (by suffix; hidden files aside)."""
    root = Path(folder)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                  and p.suffix.lower() not in VIDEO_SUFFIXES and not p.name.startswith("."))


def from_folder(folder: str | Path) -> list[VideoItem]:
    """Every video file under `folder`; the id is its relative path without the suffix."""
    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES
                   and p.is_file())
    items = [VideoItem(str(p.relative_to(root).with_suffix("")), str(p)) for p in files]
    return _check_ids(items, str(root))


def _time(value: object, where: str) -> float:
    try:
        t = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: bad time {value!r}") from None
    if not t >= 0:
        raise ManifestError(f"{where}: bad time {value!r}")
    return t


def from_csv(path: str | Path) -> list[VideoItem]:
    """Columns video_id, path [, start_s, end_s]; one row per segment when times are given."""
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        missing = {"video_id", "path"} - cols
        if missing:
            raise ManifestError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        timed = {"start_s", "end_s"} <= cols
        order: list[str] = []
        paths: dict[str, str] = {}
        segs: dict[str, list[tuple[float, float]]] = {}
        for n, row in enumerate(reader, start=2):
            vid, p = row["video_id"], row["path"]
            if vid in paths and (not timed or paths[vid] != p):
                raise ManifestError(f"{path}:{n}: duplicate video id {vid!r}")
            if vid not in paths:
                order.append(vid)
                paths[vid] = p
            if timed:
                start = _time(row["start_s"], f"{path}:{n}")
                end = _time(row["end_s"], f"{path}:{n}")
                if end <= start:
                    raise ManifestError(f"{path}:{n}: end_s {end} <= start_s {start}")
                segs.setdefault(vid, []).append((start, end))
    base = path.parent
    return _check_ids([VideoItem(v, str(base / paths[v]), tuple(segs[v]) if timed else None)
                       for v in order], str(path))


def from_jsonl(path: str | Path) -> list[VideoItem]:
    """One object a line: {"video_id", "path", optional "segments": [[start_s, end_s], ...]}."""
    path = Path(path)
    items = []
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            vid, p = str(row["video_id"]), str(row["path"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ManifestError(f"{path}:{n}: needs an object with video_id and path "
                                f"({e})") from None
        segs = None
        if row.get("segments") is not None:
            segs = []
            for s in row["segments"]:
                if not isinstance(s, list | tuple) or len(s) != 2:
                    raise ManifestError(f"{path}:{n}: segments must be [start_s, end_s] pairs")
                start, end = _time(s[0], f"{path}:{n}"), _time(s[1], f"{path}:{n}")
                if end <= start:
                    raise ManifestError(f"{path}:{n}: end {end} <= start {start}")
                segs.append((start, end))
            segs = tuple(segs)
        items.append(VideoItem(vid, str(path.parent / p), segs))
    return _check_ids(items, str(path))


def load_videos(source: str) -> list[VideoItem]:
    """A folder, a .csv or a .jsonl manifest."""
    p = Path(source)
    if p.is_dir():
        return from_folder(p)
    if not p.exists():
        raise ManifestError(f"{source}: no such file or folder")
    if p.suffix == ".csv":
        return from_csv(p)
    if p.suffix in (".jsonl", ".json"):
        return from_jsonl(p)
    raise ManifestError(f"{source}: expected a folder of videos, a .csv or a .jsonl manifest")
