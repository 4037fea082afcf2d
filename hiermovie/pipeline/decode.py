"""Decoding the frames a segment plan needs, with decord, resized inside the decoder."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

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


def open_video(path: str, width: int = -1, height: int = -1):
    import decord

    if not os.path.exists(path):
        raise BadVideo(f"{path}: file not found")
    if os.path.getsize(path) == 0:
        raise BadVideo(f"{path}: empty file (0 bytes)")
    try:
        return decord.VideoReader(path, ctx=decord.cpu(0), width=width, height=height,
                                  num_threads=1)
    except decoder_errors() as e:
        # decord prints the real cause (e.g. "moov atom not found") to stderr only
        raise BadVideo(f"{path}: cannot open as video (not a video, truncated, audio-only or "
                       f"unsupported codec): {str(e).splitlines()[0][:200]}") from None


def get_frames(vr, path: str, indices: list[int], width: int, height: int) -> np.ndarray:
    """uint8 [N, H, W, 3] frames of an open reader, checked against the size asked for.

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
    frames = open_video(path, width + 2, height + 2).get_batch(indices).asnumpy()
    frames = frames[:, 1:height + 1, 1:width + 1]
    if frames.shape[1:] != (height, width, 3):
        raise BadVideo(f"{path}: the decoder returned frames of shape {frames.shape[1:]} for "
                       f"{width}x{height} (rotated video, or an output size it mishandles)")
    return frames


def check_complete(path: str, readable: int) -> None:
    """Refuse a file whose index promises more frames than can be read.

    decord silently shortens a truncated faststart mp4 (index at the front, data cut off) to
    the frames that survived; the container header still declares the full count.
    """
    import av

    try:
        with av.open(path) as container:
            declared = container.streams.video[0].frames
    except (av.error.FFmpegError, IndexError, OSError):
        return  # decord could open it; nothing more to learn from the header
    if declared and readable < declared - 1:
        raise BadVideo(f"{path}: truncated or damaged: the file declares {declared} frames, "
                       f"only {readable} can be read")


def decode_size(path: str, size: tuple[int, int], resize: Resize) -> tuple[int, int]:
    """(width, height) to ask the decoder for."""
    h, w = size
    if resize == "squash":
        return w, h
    probe = open_video(path)
    src_h, src_w = probe[0].shape[:2]
    del probe
    scale = max(h / src_h, w / src_w)
    return max(w, round(src_w * scale)), max(h, round(src_h * scale))


def decode_video(path: str, plan: PlanConfig, size: tuple[int, int], *,
                 resize: Resize = "squash",
                 explicit: list[tuple[float, float]] | None = None) -> DecodedVideo:
    """Decode exactly the frames the plan needs, as uint8 [S, T, H, W, 3] at `size` (H, W)."""
    width, height = decode_size(path, size, resize)
    vr = open_video(path, width, height)
    n = len(vr)
    if n == 0:
        raise BadVideo(f"{path}: video has no frames")
    check_complete(path, n)
    try:
        stamps = vr.get_frame_timestamp(np.arange(n))
        duration = float(stamps[-1, 1]) if stamps[-1, 1] > stamps[-1, 0] else float(
            stamps[-1, 0] + 1.0 / max(vr.get_avg_fps(), 1e-6))
        try:
            segments = plan_segments(plan, stamps[:, 0].astype(np.float64), duration, explicit)
        except BadVideo as e:
            raise BadVideo(f"{path}: {e}") from None
        wanted = np.concatenate([s.frame_indices for s in segments])
        unique, inverse = np.unique(wanted, return_inverse=True)
        frames = get_frames(vr, path, unique.tolist(), width, height)[inverse]
    except decoder_errors() as e:
        raise BadVideo(f"{path}: decoding failed (corrupt or truncated data): "
                       f"{str(e).splitlines()[0][:200]}") from None
    frames = frames.reshape(len(segments), plan.num_frames, *frames.shape[1:])
    if resize == "short_side_crop":
        h, w = size
        top = (frames.shape[2] - h) // 2
        left = (frames.shape[3] - w) // 2
        frames = frames[:, :, top:top + h, left:left + w]
    return DecodedVideo(frames=np.ascontiguousarray(frames), segments=segments,
                        duration_s=duration, fps=float(vr.get_avg_fps()), num_frames=n)


def decode_item(path: str, explicit: list[tuple[float, float]] | None, plan: PlanConfig,
                size: int, resize: Resize) -> tuple[dict[str, Any], np.ndarray | None]:
    """(metadata, frames [S, T, H, W, 3]) of one video; a bad video gives (error, None)."""
    t = time.perf_counter()
    try:
        d = decode_video(path, plan, (size, size), resize=resize, explicit=explicit)
    except BadVideo as e:
        return {"status": "failed", "error": str(e)}, None
    meta = {
        "decode_s": time.perf_counter() - t,
        "status": "ok", "error": "",
        "duration_s": d.duration_s, "fps": d.fps, "num_frames": d.num_frames,
        "start_s": np.array([s.start_s for s in d.segments]),
        "end_s": np.array([s.end_s for s in d.segments]),
        "frame_indices": np.stack([s.frame_indices for s in d.segments]),
    }
    return meta, d.frames
