"""decord, and what it gets wrong: opening a file (remuxed first where decord would index it
wrongly), reading frames at indices, and the reads to do again.

decord2 gives up a skip to the wanted frame when its decoder thread returns nothing for 10 000
reads (a busy machine, a long film) and then returns later frames than asked, saying so only on
stderr (`SEEK_GAVE_UP`, caught by `native_stderr`); `decode.PlannedVideo` reads again on a
fresh reader, `READS` times at most, so that no stored frame is another than planned.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Literal

import numpy as np

from hiermovie.pipeline.containers import probe, reason
from hiermovie.pipeline.plans import BadVideo

Resize = Literal["squash", "short_side_crop"]


def decoder_errors() -> tuple[type[BaseException], ...]:
    import decord

    return (RuntimeError, IndexError, ValueError, decord.DECORDError)


def open_video(path: str, width: int = -1, height: int = -1, *, name: str = ""):
    """A decord reader of `path`; errors name `name` (the user's file) when given."""
    import decord

    name = name or path
    if not os.path.exists(path):
        raise BadVideo(f"{name}: file not found")
    if os.path.getsize(path) == 0:
        raise BadVideo(f"{name}: empty file (0 bytes)")
    try:
        return decord.VideoReader(path, ctx=decord.cpu(0), width=width, height=height,
                                  num_threads=1)
    except decoder_errors() as e:
        # decord prints the real cause (e.g. "moov atom not found") to stderr only
        raise BadVideo(f"{name}: cannot open as video (not a video, truncated, audio-only or "
                       f"unsupported codec): {reason(e)}") from None


SEEK_GAVE_UP = "Failed to skip frames effectively"  # decord2's words on stderr
READS = 3  # tries of a read whose seek the decoder gave up


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """What native code writes to file descriptor 2 meanwhile (the list holds it on exit),
    passed on to the real stderr afterwards."""
    sys.stderr.flush()
    saved, said = os.dup(2), []
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read()
            if text:
                os.write(2, text)
            said.append(text.decode(errors="replace"))


def get_frames(vr, path: str, indices: list[int], width: int, height: int, *,
               name: str = "") -> np.ndarray:
    """uint8 [N, H, W, 3] frames of a reader open on `path`, checked against the size asked.

    decord2 mis-sizes some outputs (e.g. widths that divide a 96-px-wide source: an error, or
    4-6 "channels" of garbage); such reads are redone 2 px larger and cropped, never passed on.
    """
    import decord

    try:
        frames = vr.get_batch(indices).asnumpy()
    except decord.DECORDError as e:
        if "must exactly match" not in str(e):
            raise
        frames = np.zeros((0,), np.uint8)
    if width <= 0 or frames.shape[1:] == (height, width, 3):
        return frames
    frames = open_video(path, width + 2, height + 2, name=name).get_batch(indices).asnumpy()
    frames = frames[:, 1:height + 1, 1:width + 1]
    if frames.shape[1:] != (height, width, 3):
        raise BadVideo(f"{name or path}: the decoder returned frames of shape "
                       f"{frames.shape[1:]} for {width}x{height} (rotated video, or an output "
                       "size it mishandles)")
    return frames


def frame_times(vr, path: str) -> tuple[np.ndarray, float]:
    """Each frame's start time and the video's duration in seconds: the last frame's end, or
    one frame interval past its start where the container gives it no length."""
    stamps = vr.get_frame_timestamp(np.arange(len(vr)))
    if len(stamps) == 0:
        raise BadVideo(f"{path}: video has no frames")
    if not (np.isfinite(stamps).all() and stamps[0, 0] > -1.0 and stamps[-1, 1] < 1e6):
        raise BadVideo(f"{path}: the container's frame times are invalid (from "
                       f"{stamps[0, 0]:.3g} s to {stamps[-1, 1]:.3g} s)")
    duration = float(stamps[-1, 1]) if stamps[-1, 1] > stamps[-1, 0] else float(
        stamps[-1, 0] + 1.0 / max(vr.get_avg_fps(), 1e-6))
    return stamps[:, 0].astype(np.float64), duration


def check_complete(path: str, readable: int) -> None:
    """Refuse a file whose index promises more frames than can be read.

    decord silently shortens a truncated faststart mp4 (index at the front, data cut off) to
    the frames that survived; the container header still declares the full count.
    """
    info = probe(path)
    declared = info.frames if info else 0
    if declared and readable < declared - 1:
        raise BadVideo(f"{path}: truncated or damaged: the file declares {declared} frames, "
                       f"only {readable} can be read")


def decode_size(path: str, size: tuple[int, int], resize: Resize, *,
                name: str = "") -> tuple[int, int]:
    """(width, height) to ask the decoder for."""
    h, w = size
    if resize == "squash":
        return w, h
    probe = open_video(path, name=name)
    src_h, src_w = probe[0].shape[:2]
    del probe
    scale = max(h / src_h, w / src_w)
    return max(w, round(src_w * scale)), max(h, round(src_h * scale))
