"""Video lists: a folder of videos, or a CSV / JSONL manifest (id, path, optional segments)."""

from __future__ import annotations

import csv
import json
import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from hiermovie.config import ConfigError

VIDEO_SUFFIXES = {".mp4", ".m4v", ".3gp", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts",
                  ".mpg", ".mpeg", ".vob", ".flv", ".wmv"}


class ManifestError(ValueError):
    """A manifest that cannot be used; names the file and the reason."""


@dataclass(frozen=True)
class VideoItem:
    video_id: str
    path: str
    segments: tuple[tuple[float, float], ...] | None = None  # explicit (start_s, end_s)
    label: str | None = None  # a labelled data set's class (kinetics:ROOT), for supervised level 1


def misleading(text: str) -> bool:
    """A control or formatting character (a newline, a right-to-left override): the id
    would print as another."""
    return any(unicodedata.category(c) in ("Cc", "Cf") for c in text)


def _check_ids(items: list[VideoItem], source: str) -> list[VideoItem]:
    seen: set[str] = set()
    for it in items:
        if not it.video_id:
            raise ManifestError(f"{source}: empty video id for {it.path!r}")
        if misleading(it.video_id):
            raise ManifestError(f"{source}: video id {it.video_id!r} holds a control or "
                                "formatting character (a newline, a right-to-left override, "
                                "...): it would read as another id")
        if it.video_id in seen:
            raise ManifestError(f"{source}: duplicate video id {it.video_id!r}")
        seen.add(it.video_id)
    return items


def scan_folder(folder: str | Path) -> tuple[list[VideoItem], dict[str, str]]:
    """Every entry under `folder`: the videos (by suffix; the id is the relative path without
    the suffix), and every other entry with why it is not one (not a video by its suffix, a
    hidden file, a link to nothing, a pipe or device, a folder that cannot be read, a link
    back to a folder already scanned). Links to folders are followed."""
    root = Path(folder)
    found: list[Path] = []
    skipped: dict[str, str] = {}
    seen: set[str] = set()

    def unreadable(e: OSError) -> None:
        skipped[_rel(e.filename, root)] = f"a folder that cannot be read ({e.strerror})"

    for here, dirs, files in os.walk(root, onerror=unreadable, followlinks=True):
        seen.add(os.path.realpath(here))
        for d in list(dirs):
            if os.path.realpath(os.path.join(here, d)) in seen:
                dirs.remove(d)
                skipped[_rel(os.path.join(here, d), root)] = ("a link back to a folder already "
                                                              "scanned (not followed)")
        for name in files:
            path = Path(here) / name
            why = _not_a_video(path)
            if misleading(_rel(path, root)):  # its id would read as another: shown escaped
                skipped[repr(_rel(path, root))] = "its name holds a control or formatting character"
            elif why:
                skipped[_rel(path, root)] = why
            else:
                found.append(path)
    items = [VideoItem(str(p.relative_to(root).with_suffix("")), str(p)) for p in sorted(found)]
    return _check_ids(items, str(root)), dict(sorted(skipped.items()))


def _rel(path: str | Path, root: Path) -> str:
    return os.path.relpath(path, root)


def _not_a_video(path: Path) -> str:
    """Why a directory entry that is not a folder is not taken as a video ("" if it is)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a link to nothing"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if not stat.S_ISREG(mode):
        kinds = {stat.S_ISFIFO: "a named pipe", stat.S_ISSOCK: "a socket",
                 stat.S_ISCHR: "a device", stat.S_ISBLK: "a device"}
        return next((f"{k}, not a file" for test, k in kinds.items() if test(mode)),
                    "not a regular file")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return ""
    if path.name.startswith("."):
        return "a hidden file"
    return f"not a video by its suffix ({path.suffix or 'none'})"


def from_folder(folder: str | Path) -> list[VideoItem]:
    """Every video file under `folder` (`scan_folder`'s videos)."""
    return scan_folder(folder)[0]


def _time(value: object, where: str) -> float:
    try:
        t = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: bad time {value!r}") from None
    if not t >= 0:
        raise ManifestError(f"{where}: bad time {value!r}")
    return t


def _text(path: Path) -> str:
    """The manifest's text: UTF-8, a byte-order mark (as spreadsheets write) dropped."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save it as "
                            "UTF-8 (spreadsheets: 'CSV UTF-8')") from None


def _dialect(header: str) -> type[csv.Dialect] | csv.Dialect:
    """Commas, or the semicolons and tabs that spreadsheets in many locales write."""
    if "," in header or not any(d in header for d in ";\t"):
        return csv.excel
    return csv.Sniffer().sniff(header, delimiters=";\t")


def from_csv(path: str | Path) -> list[VideoItem]:
    """Columns video_id, path [, start_s, end_s]; one row per segment when times are given.
    Every malformed row is refused naming its line: a missing or extra field, an empty id or
    path, a bad time."""
    path = Path(path)
    # line ends kept: a quoted field may hold a newline, and the reader must see it whole
    lines = _text(path).splitlines(keepends=True)
    if not lines or not lines[0].strip():
        raise ManifestError(f"{path}: empty file (expected a header: video_id,path"
                            "[,start_s,end_s])")
    reader = csv.reader(lines, _dialect(lines[0]))
    header = [h.strip() for h in next(reader)]
    missing = {"video_id", "path"} - set(header)
    if missing:
        raise ManifestError(f"{path}:1: missing column(s) {', '.join(sorted(missing))} (header "
                            f"{header})")
    timed = {"start_s", "end_s"} <= set(header)
    order: list[str] = []
    paths: dict[str, str] = {}
    segs: dict[str, list[tuple[float, float]]] = {}
    for fields in reader:
        n = reader.line_num
        if not any(f.strip() for f in fields):
            continue  # a blank line
        if len(fields) != len(header):
            raise ManifestError(f"{path}:{n}: {len(fields)} fields, the header has "
                                f"{len(header)}" + (" (a comma inside a path must be quoted)"
                                                    if len(fields) > len(header) else ""))
        row = dict(zip(header, (f.strip() for f in fields), strict=True))
        vid, p = row["video_id"], row["path"]
        if not vid or not p:
            raise ManifestError(f"{path}:{n}: empty {'video_id' if not vid else 'path'}")
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
    if not order:
        raise ManifestError(f"{path}: no rows after the header (a manifest lists one video, "
                            "or one segment, per row)")
    base = path.parent
    return _check_ids([VideoItem(v, str(base / paths[v]), tuple(segs[v]) if timed else None)
                       for v in order], str(path))


def _segments(value: object, where: str) -> tuple[tuple[float, float], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ManifestError(f"{where}: segments must be a list of [start_s, end_s] pairs")
    out = []
    for s in value:
        if not isinstance(s, list) or len(s) != 2:
            raise ManifestError(f"{where}: segments must be [start_s, end_s] pairs, got {s!r}")
        start, end = _time(s[0], where), _time(s[1], where)
        if end <= start:
            raise ManifestError(f"{where}: end {end} <= start {start}")
        out.append((start, end))
    return tuple(out)


def from_jsonl(path: str | Path) -> list[VideoItem]:
    """One object a line: {"video_id", "path", optional "segments": [[start_s, end_s], ...]};
    a .json file may hold one array of such objects instead."""
    path = Path(path)
    text = _text(path)
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = list(enumerate(json.loads(text), start=1))
        except json.JSONDecodeError as e:
            raise ManifestError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        label = "item"
    else:
        rows, label = [], "line"
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                raise ManifestError(f"{path}:{n}: not valid JSON ({e.msg})") from None
    items = []
    for n, row in rows:
        where = f"{path}:{n}" if label == "line" else f"{path}: item {n}"
        if not isinstance(row, dict):
            raise ManifestError(f"{where}: expected an object with video_id and path, got "
                                f"{type(row).__name__}")
        vid, p = row.get("video_id"), row.get("path")
        if isinstance(vid, bool) or not isinstance(vid, str | int) or not str(vid).strip():
            raise ManifestError(f"{where}: video_id must be a non-empty string, got {vid!r}")
        if not isinstance(p, str) or not p.strip():
            raise ManifestError(f"{where}: path must be a non-empty string, got {p!r}")
        items.append(VideoItem(str(vid).strip(), str(path.parent / p.strip()),
                               _segments(row.get("segments"), where)))
    if not items:
        raise ManifestError(f"{path}: no videos listed")
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


def class_names(items: list[VideoItem], source: str) -> list[str]:
    """The sorted labels of `items` (a supervised objective's classes); every video must have
    one."""
    unlabelled = [it.video_id for it in items if it.label is None]
    if unlabelled:
        raise ConfigError(f"input: {source}: a supervised objective needs a label for every "
                          f"video; {len(unlabelled)} have none (first: {unlabelled[0]}); use a "
                          "labelled data set such as kinetics:ROOT")
    return sorted({it.label for it in items})
