"""Decoding the frames a segment plan needs, with decord, resized inside the decoder.

decord finds frames by its own index of the container. That index is right for MP4/MOV (and
3GP) and Matroska/WebM: frame numbers and timestamps equal PyAV's for h264, hevc, vp9, av1,
mpeg2 and mpeg4 (tests/test_decode_matrix.py). In other containers it is wrong (MPEG-TS comes
back shifted by ~2 s of frames, MPEG-PS and AVI with B-frames get garbage timestamps and wrong
frames), so their video stream is first remuxed, packets copied without re-encoding, into a
temporary Matroska file, which decord then reads correctly; a codec Matroska cannot hold is
refused naming the file. PyAV reads the container's format first, so the file's content, not
its name, picks the route.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from hiermovie.pipeline.plans import BadVideo, PlanConfig, Segment, plan_segments

Resize = Literal["squash", "short_side_crop"]
# PyAV's names of the demuxers whose frames decord indexes correctly
DECORD_FORMATS = {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"}


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


def _reason(e: BaseException) -> str:
    """The decoder's message without its clock (decord prefixes "[hh:mm:ss] "), so two runs
    store the same reason."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return re.sub(r"\[\d\d:\d\d:\d\d\] ", "", text)[:200]


@dataclass(frozen=True)
class Container:
    """What a file's header says, as PyAV reads it."""

    format: str  # PyAV's demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    frames: int  # declared by the video stream (0 = not declared)
    duration_s: float | None


def probe(path: str) -> Container | None:
    """The header of a file with a video stream (None otherwise); read once per decode, as
    routing and the truncation check share it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _probe(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _probe(path: str, mtime_ns: int, size: int) -> Container | None:
    # keyed by mtime and size too: a file fixed and retried is read afresh
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                return None
            duration = container.duration / 1e6 if container.duration else None
            return Container(container.format.name, container.streams.video[0].frames,
                             duration)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return None


@contextlib.contextmanager
def readable(path: str) -> Iterator[str]:
    """A path decord reads correctly: `path` itself, or its video stream remuxed into a
    temporary Matroska file (removed afterwards) for containers decord indexes wrongly."""
    info = probe(path)
    if info is None or info.format in DECORD_FORMATS:
        yield path  # decord opens it, or says why it cannot
        return
    import av

    with tempfile.TemporaryDirectory(prefix="hiermovie-remux-") as tmp:
        out_path = os.path.join(tmp, "video.mkv")
        try:
            # genpts: AVI and some MPEG streams carry no presentation time on B-frames
            with av.open(path, options={"fflags": "+genpts"}) as src, \
                    av.open(out_path, "w", format="matroska") as out:
                stream = src.streams.video[0]
                target = out.add_stream_from_template(stream)
                for packet in src.demux(stream):
                    if packet.dts is None and packet.pts is None:
                        continue  # the demuxer's end-of-stream marker
                    packet.stream = target
                    out.mux(packet)
        except (av.error.FFmpegError, ValueError) as e:
            raise BadVideo(f"{path}: {info.format} container with a codec whose frames cannot be "
                           f"read at verified times ({_reason(e)}); convert it, e.g. ffmpeg "
                           "-i IN -c:v libx264 OUT.mp4") from None
        yield out_path


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
                       f"unsupported codec): {_reason(e)}") from None


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


def decode_video(path: str, plan: PlanConfig, size: tuple[int, int], *,
                 resize: Resize = "squash",
                 explicit: list[tuple[float, float]] | None = None,
                 strict: bool = False) -> DecodedVideo:
    """Decode exactly the frames the plan needs, as uint8 [S * clips, T, H, W, 3] at `size`
    (H, W): one model input per clip, `plan.clips` per segment."""
    with readable(path) as source:
        width, height = decode_size(source, size, resize, name=path)
        vr = open_video(source, width, height, name=path)
        n = len(vr)
        if n == 0:
            raise BadVideo(f"{path}: video has no frames")
        check_complete(path, n)
        try:
            starts, duration = frame_times(vr, path)
            try:
                segments = plan_segments(plan, starts, duration, explicit, strict)
            except BadVideo as e:
                raise BadVideo(f"{path}: {e}") from None
            wanted = np.concatenate([s.frame_indices for s in segments])
            unique, inverse = np.unique(wanted, return_inverse=True)
            frames = get_frames(vr, source, unique.tolist(), width, height, name=path)[inverse]
        except decoder_errors() as e:
            raise BadVideo(f"{path}: decoding failed (corrupt or truncated data): "
                           f"{_reason(e)}") from None
        fps = float(vr.get_avg_fps())
        del vr  # closes the file before a temporary copy is removed
    frames = frames.reshape(len(segments) * plan.clips, plan.num_frames, *frames.shape[1:])
    if resize == "short_side_crop":
        h, w = size
        top = (frames.shape[2] - h) // 2
        left = (frames.shape[3] - w) // 2
        frames = frames[:, :, top:top + h, left:left + w]
    return DecodedVideo(frames=np.ascontiguousarray(frames), segments=segments,
                        duration_s=duration, fps=fps, num_frames=n)


def decode_item(path: str, explicit: list[tuple[float, float]] | None, plan: PlanConfig,
                size: int, resize: Resize, strict: bool = False
                ) -> tuple[dict[str, Any], np.ndarray | None]:
    """(metadata, frames [S * clips, T, H, W, 3]) of one video; a bad video gives (error,
    None)."""
    t = time.perf_counter()
    try:
        d = decode_video(path, plan, (size, size), resize=resize, explicit=explicit,
                         strict=strict)
    except BadVideo as e:
        return {"status": "failed", "error": str(e)}, None
    meta = {
        "decode_s": time.perf_counter() - t,
        "status": "ok", "error": "",
        "duration_s": d.duration_s, "fps": d.fps, "num_frames": d.num_frames,
        "start_s": np.array([s.start_s for s in d.segments]),
        "end_s": np.array([s.end_s for s in d.segments]),
        "frame_indices": np.stack([s.frame_indices for s in d.segments]),
        "clamped": sum(s.clamped for s in d.segments),
    }
    return meta, d.frames
