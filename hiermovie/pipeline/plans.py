"""Segment plans: which time spans of a video become segments, and which frames each one reads.

Frames are chosen by timestamp, not by index arithmetic, so variable or unusual frame rates
give the frames shown at the planned times. A segment centred at time c reads `num_frames`
frames spaced `sampling_rate / target_fps` seconds apart, starting half a window before c
(VidSitu's SlowFast recipe: 32 x 2 frames at 30 fps = a 2.13 s window per 2 s event); each
time maps to the last frame whose timestamp is <= that time, clamped to the video.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from hiermovie.config import opt

PlanKind = Literal["auto", "vidsitu", "sliding", "explicit"]
Coverage = Literal["centre", "spread"]


class BadVideo(Exception):
    """A video that cannot be used; the message names the file and the reason."""


@dataclass
class FrameSampling:
    """`num_frames` frames `sampling_rate / target_fps` seconds apart: how both a segment
    (extract) and a training clip (pretrain-backbone) read a video."""

    num_frames: int = opt(16, "frames read per segment")
    sampling_rate: int = opt(4, "spacing of those frames, in frames at target_fps")
    target_fps: float = opt(30.0, "frame rate the sampling is defined at (VidSitu: 30)")
    _least = 1  # PlanConfig admits 0: the backbone's recipe

    def __post_init__(self) -> None:
        for name in ("num_frames", "sampling_rate"):
            if getattr(self, name) < self._least:
                raise ValueError(f"{name}: must be >= {self._least}")
        if not self.target_fps > 0:
            raise ValueError("target_fps: must be > 0")

    @property
    def steps(self) -> np.ndarray:
        """Each frame's offset from the first, in frames at target_fps."""
        return np.arange(self.num_frames) * self.sampling_rate

    @property
    def span_s(self) -> float:
        return self.num_frames * self.sampling_rate / self.target_fps


@dataclass
class PlanConfig(FrameSampling):
    num_frames: int = opt(0, "frames read per segment (0 = the backbone's recipe, e.g. 32 "
                          "for SlowFast 8x8; 16 for backbones without one)")
    sampling_rate: int = opt(0, "spacing of those frames, in frames at target_fps (0 = the "
                             "backbone's recipe; 4 for backbones without one)")
    kind: PlanKind = opt("auto", "vidsitu: 5 events of 2 s; sliding: windows over the whole "
                         "video; explicit: start/end times from the manifest; auto: vidsitu "
                         "for vidsitu:ROOT, explicit where the input gives segment times "
                         "(kinetics:ROOT, a manifest with times), else sliding")
    events: int = opt(5, "vidsitu: events per clip")
    event_s: float = opt(2.0, "vidsitu: event length in seconds")
    window_s: float = opt(2.0, "sliding: segment length in seconds")
    stride_s: float = opt(2.0, "sliding: step between segment starts in seconds")
    coverage: Coverage = opt("centre", "centre: num_frames frames sampling_rate apart around "
                             "the segment's centre (VidSitu's recipe); spread: "
                             "clips_per_segment clips of num_frames evenly spaced frames over "
                             "the whole segment (as video_features)")
    clips_per_segment: int = opt(1, "spread: clips per segment")
    clip_pool: Literal["mean", "tokens"] = opt("mean", "spread, several clips: average their "
                                               "features, or keep each clip's as tokens")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("events", "clips_per_segment"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1")
        for name in ("event_s", "window_s", "stride_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0")
        if self.clips_per_segment > 1 and self.coverage != "spread":
            raise ValueError("clips_per_segment: more than 1 needs coverage 'spread'")

    _least = 0

    @property
    def clips(self) -> int:
        """Model inputs per segment."""
        return self.clips_per_segment if self.coverage == "spread" else 1

    def resolved(self, source: str, has_segments: bool,
                 recipe: tuple[int, int]) -> tuple[PlanConfig, str]:
        """This plan with `auto` and the 0s chosen for an input and a backbone (its `recipe`:
        frames, spacing), and a line saying what was chosen, empty when nothing was."""
        chosen = {}
        if self.kind == "auto":
            chosen["kind"] = ("vidsitu" if source.startswith("vidsitu:") else
                              "explicit" if has_segments else "sliding")
        for name, value in zip(("num_frames", "sampling_rate"), recipe, strict=True):
            if not getattr(self, name):
                chosen[name] = value
        plan = replace(self, **chosen)
        if not chosen:
            return plan, ""
        what = {"vidsitu": f"VidSitu's {plan.events} events of {plan.event_s:g} s",
                "explicit": "the segment times the input gives",
                "sliding": f"windows of {plan.window_s:g} s every {plan.stride_s:g} s over each "
                           "whole video"}[plan.kind]
        return plan, (f"{what}, {plan.num_frames} frames {plan.sampling_rate} apart at "
                      f"{plan.target_fps:g} fps per segment (chosen for this input and "
                      f"backbone: {', '.join(f'--plan.{k}' for k in chosen)} to change)")


# the fields each plan kind reads, and those only the spread coverage reads (the rest of a
# recorded plan are defaults it never used)
KIND_FIELDS = {"vidsitu": ("events", "event_s"), "sliding": ("window_s", "stride_s"),
               "explicit": ()}
SPREAD_FIELDS = ("clips_per_segment", "clip_pool")


def fields_used(sampling: dict[str, Any]) -> dict[str, Any]:
    """A recorded plan (a store's `sampling`) without the fields its kind and coverage never
    read; imported features' sampling (no plan kind) as the importer recorded it."""
    kind = sampling.get("kind")
    if kind not in KIND_FIELDS:
        return sampling
    keep = {"kind", "num_frames", "coverage", "resize", *KIND_FIELDS[kind]}
    keep |= (set(SPREAD_FIELDS) if sampling.get("coverage") == "spread"
             else {"sampling_rate", "target_fps"})
    return {k: v for k, v in sampling.items() if k in keep}


@dataclass(slots=True)
class Segment:
    start_s: float
    end_s: float
    frame_indices: np.ndarray  # [clips * num_frames] int64
    clamped: bool = False  # asked to end past the video's end; end_s is the video's end


def spans(cfg: PlanConfig, duration_s: float,
          explicit: list[tuple[float, float]] | None = None,
          strict: bool = False) -> list[tuple[float, float]]:
    """The (start, end) seconds of each segment of a video of `duration_s`. An explicit
    segment ending past the video's end is clamped to it (refused when `strict`)."""
    if cfg.kind == "auto" or not cfg.num_frames or not cfg.sampling_rate:
        raise ValueError("an unresolved plan: PlanConfig.resolved chooses auto's kind and frames")
    if cfg.kind == "vidsitu":
        last_centre = (cfg.events - 0.5) * cfg.event_s
        if duration_s <= last_centre:
            raise BadVideo(f"video is {duration_s:.2f} s; the vidsitu plan needs more than "
                           f"{last_centre:.2f} s (the centre of event {cfg.events})")
        return [(i * cfg.event_s, (i + 1) * cfg.event_s) for i in range(cfg.events)]
    if cfg.kind == "sliding":
        need = min(cfg.window_s, cfg.stride_s) / 2
        if duration_s < need:
            raise BadVideo(f"video is {duration_s:.2f} s; the sliding plan (windows of "
                           f"{cfg.window_s:g} s every {cfg.stride_s:g} s) needs at least "
                           f"{need:g} s (half the smaller of --plan.window_s and "
                           "--plan.stride_s)")
        starts = np.arange(0.0, duration_s, cfg.stride_s)
        # a tail shorter than half a window is dropped, except when it is the only segment
        keep = [s for s in starts if duration_s - s >= cfg.window_s / 2] or [0.0]
        return [(float(s), float(min(s + cfg.window_s, duration_s))) for s in keep]
    if not explicit:
        raise BadVideo("the explicit plan needs segments (start, end) for every video")
    out = []
    for start, end in explicit:
        if not (0 <= start < end):
            raise BadVideo(f"bad segment time span ({start}, {end})")
        if start >= duration_s:
            raise BadVideo(f"segment ({start}, {end}) starts after the video ends "
                           f"({duration_s:.2f} s)")
        if end > duration_s + 1e-3 and strict:
            raise BadVideo(f"segment ({start}, {end}) ends after the video ends "
                           f"({duration_s:.2f} s; refused under --strict)")
        out.append((float(start), float(min(end, duration_s))))
    return out


def sample_times(cfg: PlanConfig, start_s: float, end_s: float) -> np.ndarray:
    """Timestamps of the frames a segment reads: a centred window (module docstring), or with
    `coverage="spread"` `clips` equal parts of the segment, `num_frames` frames at the middles
    of equal steps of each part."""
    if cfg.coverage == "spread":
        edges = np.linspace(start_s, end_s, cfg.clips + 1)
        steps = (np.arange(cfg.num_frames) + 0.5) / cfg.num_frames
        parts = zip(edges[:-1], edges[1:], strict=True)
        return np.concatenate([a + steps * (b - a) for a, b in parts])
    centre = (start_s + end_s) / 2
    return centre + (cfg.steps - cfg.num_frames * cfg.sampling_rate // 2) / cfg.target_fps


def frames_at(frame_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index of the frame on screen at each time (the last frame starting at or before it)."""
    # timestamps arrive rounded (float32 in decord: ~4e-6 s at 33 s; whole milliseconds in
    # Matroska), so a time within that rounding of a frame's start belongs to that frame
    spacing = float(np.median(np.diff(frame_times))) if len(frame_times) > 1 else 1.0
    tol = min(1e-3, spacing / 4) if spacing > 0 else 1e-6
    idx = np.searchsorted(frame_times, np.asarray(times) + tol, side="right") - 1
    return np.clip(idx, 0, len(frame_times) - 1).astype(np.int64)


def plan_segments(cfg: PlanConfig, frame_times: np.ndarray, duration_s: float,
                  explicit: list[tuple[float, float]] | None = None,
                  strict: bool = False) -> list[Segment]:
    """The segments of one video, given the start time of each of its frames."""
    if len(frame_times) == 0:
        raise BadVideo("video has no frames")
    asked = dict(enumerate(explicit or [])) if cfg.kind == "explicit" else {}
    planned = spans(cfg, duration_s, explicit, strict)
    # one lookup for the whole film: per segment it would scan the frame table each time
    frames = frames_at(frame_times, np.stack([sample_times(cfg, s, e) for s, e in planned]))
    return [Segment(s, e, frames[i], clamped=i in asked and asked[i][1] > e + 1e-3)
            for i, (s, e) in enumerate(planned)]
