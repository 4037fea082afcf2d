"""Decoding the frames a segment plan needs, resized inside the decoder (`decord_io`: decord
and its workarounds), and the streaming protocol of extract's decode tasks: a film is decoded
part by part (`decode_item`), so the process holds one part of its frames, whatever its
length."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hiermovie.pipeline.containers import readable, reason
from hiermovie.pipeline.decord_io import (
    READS,
    SEEK_GAVE_UP,
    Resize,
    check_complete,
    decode_size,
    decoder_errors,
    frame_times,
    get_frames,
    native_stderr,
    open_video,
)
from hiermovie.pipeline.plans import BadVideo, PlanConfig, Segment, plan_segments


@dataclass
class DecodedVideo:
    frames: np.ndarray  # uint8 [S, T, H, W, 3]
    segments: list[Segment]
    duration_s: float
    fps: float
    num_frames: int


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
