"""LVU task files, read exactly as released (`lvu_1.0/{task}/{train,val,test}.csv`).

The files are space-separated with a header. Classification rows are
`class_id class_name youtube_id imdb_id`, like_ratio rows `like dislike youtube_id imdb_id`,
view_count rows `view_count youtube_id imdb_id`; the video id is the second-to-last field.
Regression targets are centred as in LVU. Videos: `{root}/lvu_videos/{youtube_id}.mp4`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from hiermovie.datasets.manifest import ManifestError, VideoItem

TASKS: dict[str, int | None] = {
    "relationship": 4, "way_speaking": 5, "scene": 6, "director": 10, "writer": 10,
    "year": 9, "genre": 4, "like_ratio": None, "view_count": None,
}
LIKE_RATIO_MEAN = 9.138220535629456
VIEW_COUNT_MEAN = 11.76425435683139
SPLITS = ("train", "val", "test")
VIDEO_DIR = "lvu_videos"


@dataclass(frozen=True)
class LVUExample:
    video_id: str
    target: float  # class id, or the centred regression target
    class_name: str = ""


def _task_dir(root: str | Path, task: str) -> Path:
    root = Path(root)
    base = root / "lvu_1.0" if (root / "lvu_1.0").is_dir() else root
    return base / task


def load_task(root: str | Path, task: str, split: str) -> list[LVUExample]:
    if task not in TASKS:
        raise ManifestError(f"unknown LVU task {task!r} (known: {', '.join(TASKS)})")
    path = _task_dir(root, task) / f"{split}.csv"
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise ManifestError(f"{path}: missing") from None
    out = []
    for n, line in enumerate(lines[1:], start=2):
        f = line.split()
        if not f:
            continue
        try:
            if task == "like_ratio":
                like, dislike = float(f[0]), float(f[1])
                out.append(LVUExample(f[-2], like / (like + dislike) * 10 - LIKE_RATIO_MEAN))
            elif task == "view_count":
                out.append(LVUExample(f[-2], math.log(float(f[0])) - VIEW_COUNT_MEAN))
            else:
                out.append(LVUExample(f[-2], int(f[0]), f[1]))
        except (ValueError, IndexError, ZeroDivisionError):
            raise ManifestError(f"{path}:{n}: cannot read row {line!r}") from None
    return out


def video_path(root: str | Path, video_id: str) -> Path:
    return Path(root) / VIDEO_DIR / f"{video_id}.mp4"


def videos(root: str) -> list[VideoItem]:
    """Every video named by any task file whose mp4 exists (coverage printed)."""
    ids: dict[str, None] = {}
    for task in TASKS:
        for split in SPLITS:
            if (_task_dir(root, task) / f"{split}.csv").exists():
                ids.update(dict.fromkeys(e.video_id for e in load_task(root, task, split)))
    if not ids:
        raise ManifestError(f"{root}: no lvu_1.0/<task>/<split>.csv files")
    items = [VideoItem(v, str(video_path(root, v))) for v in ids if video_path(root, v).exists()]
    print(f"lvu: {len(items)} of {len(ids)} videos named by the task files found in "
          f"{Path(root) / VIDEO_DIR}")
    return items
