"""Decoding the frames a segment plan needs, with decord, resized inside the decoder; files
decord would index wrongly are first remuxed (`containers.readable`).

decord2 gives up a skip to the wanted frame when its decoder thread returns nothing for 10 000
reads (a busy machine, a long film) and then returns later frames than asked, saying so only on
stderr; a read that says so is done again on a fresh reader, and a video whose reads keep
giving up fails, so that no stored frame is another than planned.

A film is decoded part by part (`decode_item`): the process holds one part of its frames,
whatever its length.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from hiermovie.pipeline.containers import probe, readable, reason
from hiermovie.pipeline.plans import BadVideo, PlanConfig, Segment, plan_segments

Resize = Literal["squash", "short_side_crop"]


@dataclass
class DecodedVideo:
    frames: np.ndarray  # uint8 [S, T, H, W, 3]
    segments: list[Segment]
    duration_s: float
    fps: float
    num_frames: int


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


@dataclass
class PlannedVideo:
    """A video open for decoding, its segments planned: frames are read a part at a time."""

    vr: Any
    source: str  # the file decord reads (a temporary remux for some containers)
    path: str  # the user's file, named in errors
    width: int
    height: int
    plan: PlanConfig
    size: tuple[int, int]
    resize: Resize
    segments: list[Segment]
    duration_s: float

    def frames(self, segments: list[Segment]) -> np.ndarray:
        """uint8 [len(segments) * clips, T, H, W, 3]: one model input per clip."""
        wanted = np.concatenate([s.frame_indices for s in segments])
        unique, inverse = np.unique(wanted, return_inverse=True)
        try:
            frames = self._read(unique.tolist())
            if len(unique) < len(wanted) or (np.diff(wanted) < 0).any():
                frames = frames[inverse]  # a copy only where frames repeat or come back
        except decoder_errors() as e:
            raise BadVideo(f"{self.path}: decoding failed (corrupt or truncated data): "
                           f"{reason(e)}") from None
        frames = frames.reshape(len(segments) * self.plan.clips, self.plan.num_frames,
                                *frames.shape[1:])
        if self.resize == "short_side_crop":
            h, w = self.size
            top = (frames.shape[2] - h) // 2
            left = (frames.shape[3] - w) // 2
            frames = frames[:, :, top:top + h, left:left + w]
        return np.ascontiguousarray(frames)

    def _read(self, indices: list[int]) -> np.ndarray:
        for _ in range(READS):
            with native_stderr() as said:
                frames = get_frames(self.vr, self.source, indices, self.width, self.height,
                                    name=self.path)
            if SEEK_GAVE_UP not in said[0]:
                return frames
            self.vr = open_video(self.source, self.width, self.height, name=self.path)
        raise BadVideo(f"{self.path}: the decoder gave up seeking to frames {indices[0]}-"
                       f"{indices[-1]} in {READS} reads (decord: {SEEK_GAVE_UP})")


@contextlib.contextmanager
def open_planned(path: str, plan: PlanConfig, size: tuple[int, int], *,
                 resize: Resize = "squash", explicit: list[tuple[float, float]] | None = None,
                 strict: bool = False) -> Iterator[PlannedVideo]:
    """Open `path`, check it and plan its segments; frames are decoded on demand."""
    with readable(path) as source:
        width, height = decode_size(source, size, resize, name=path)
        vr = open_video(source, width, height, name=path)
        if len(vr) == 0:
            raise BadVideo(f"{path}: video has no frames")
        check_complete(path, len(vr))
        try:
            starts, duration = frame_times(vr, path)
        except decoder_errors() as e:
            raise BadVideo(f"{path}: decoding failed (corrupt or truncated data): "
                           f"{reason(e)}") from None
        try:
            segments = plan_segments(plan, starts, duration, explicit, strict)
        except BadVideo as e:
            raise BadVideo(f"{path}: {e}") from None
        yield PlannedVideo(vr, source, path, width, height, plan, size, resize, segments,
                           duration)
        del vr  # closes the file before a temporary copy is removed


def decode_video(path: str, plan: PlanConfig, size: tuple[int, int], *,
                 resize: Resize = "squash",
                 explicit: list[tuple[float, float]] | None = None,
                 strict: bool = False) -> DecodedVideo:
    """Decode all the frames the plan needs at once, as uint8 [S * clips, T, H, W, 3] at `size`
    (H, W). For short clips; `decode_item` streams a film in bounded parts."""
    with open_planned(path, plan, size, resize=resize, explicit=explicit, strict=strict) as v:
        frames = v.frames(v.segments)
        fps, n = float(v.vr.get_avg_fps()), len(v.vr)
    return DecodedVideo(frames=frames, segments=v.segments, duration_s=v.duration_s, fps=fps,
                        num_frames=n)


@dataclass(frozen=True)
class DecodeSpec:
    """How every video of a job is decoded: the work item a decode task gets beside the file."""

    plan: PlanConfig
    size: int  # the model's input size in pixels (square)
    resize: Resize = "squash"
    strict: bool = False  # explicit segments outside the video fail it (else are clamped)
    part_segments: int = 64  # segments per streamed part


def decode_item(path: str, explicit: list[tuple[float, float]] | None, spec: DecodeSpec
                ) -> Iterator[dict[str, Any] | np.ndarray | None]:
    """One video as a stream: its metadata (with "parts", their count), then its frames
    [<= spec.part_segments * clips, T, H, W, 3] part by part, then how it ended ({"status":
    "ok", "decode_s"} or "failed" with the error). A process holds one part whatever the
    video's length. The count is always 1 + parts + 1: a part that cannot be decoded and those
    after it come as None. A video refused before its metadata yields only the failure."""
    t = time.perf_counter()  # memory flat in the film's length: `hardware.ONE_HEAP`
    parts: list[list[Segment]] = []
    done, started = 0, False
    try:
        with open_planned(path, spec.plan, (spec.size, spec.size), resize=spec.resize,
                          explicit=explicit, strict=spec.strict) as v:
            segs, n = v.segments, spec.part_segments
            parts = [segs[i:i + n] for i in range(0, len(segs), n)]
            started = True
            yield {
                "status": "ok", "error": "", "parts": len(parts),
                "duration_s": v.duration_s, "fps": float(v.vr.get_avg_fps()),
                "num_frames": len(v.vr),
                "start_s": np.array([s.start_s for s in segs]),
                "end_s": np.array([s.end_s for s in segs]),
                "frame_indices": np.stack([s.frame_indices for s in segs]),
                "clamped": sum(s.clamped for s in segs),
            }
            for part in parts:
                yield v.frames(part)
                done += 1
    except BadVideo as e:
        for _ in range(len(parts) - done if started else 0):  # keep the count (no `yield
            yield None  # from`: Ray drives the generator with send(), which lists lack)
        yield {"status": "failed", "error": str(e)}
        return
    yield {"status": "ok", "decode_s": time.perf_counter() - t}
