"""Clips for self-supervised backbone pretraining: several clips of one video, augmented.

Each clip is `num_frames` frames `sampling_rate / target_fps` seconds apart, chosen by
timestamp like extract's segment plans, decoded with decord at a little over the crop size.
Every sample is a pure function of (seed, sample number), so DataLoader workers and resumed
runs see exactly the same clips and augmentations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hiermovie.config import opt
from hiermovie.pipeline.containers import readable
from hiermovie.pipeline.decord_io import (
    decode_size,
    decoder_errors,
    frame_times,
    get_frames,
    open_video,
)
from hiermovie.pipeline.plans import BadVideo, FrameSampling, frames_at


@dataclass
class ClipConfig(FrameSampling):
    clips: int = opt(2, "clips per sample, the positives of each other (CVRL: 2; rho-BYOL: rho)")
    max_gap_s: float = opt(0.0, "positives start at most this far apart (0 = anywhere in the "
                           "video, as CVRL)")
    per_video: int = opt(1, "samples of each video per batch, at different times; > 1 makes a "
                         "video's other moments negatives, so features must tell them apart")
    num_frames: int = opt(8, "frames per clip")
    static_negative: bool = opt(False, "add a still clip (the first frame held, same "
                                "augmentation) as a negative: appearance alone cannot tell it "
                                "from its video, so features must encode motion")
    min_crop_area: float = opt(0.3, "random resized crop: smallest area kept")
    jitter: float = opt(0.8, "probability of colour jitter (brightness, contrast, saturation, hue)")
    grayscale: float = opt(0.2, "probability of grayscale")
    blur: float = opt(0.5, "probability of Gaussian blur")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.clips < 2:
            raise ValueError("clips: need at least 2 clips per video for positive pairs")
        if self.max_gap_s < 0 or self.per_video < 1:
            raise ValueError("max_gap_s and per_video: must be >= 0 and >= 1")
        if not 0 < self.min_crop_area <= 1:
            raise ValueError("min_crop_area: must be in (0, 1]")


def clip_starts(rng: np.random.Generator, span: tuple[float, float], n: int,
                max_gap_s: float = 0.0) -> np.ndarray:
    """Start times of `n` distinct clips starting within `span` (lo, hi) seconds.

    Starts are independent and uniform, so the gap between two of them has CVRL's linearly
    decreasing density: near clips are common, distant ones still occur. With `max_gap_s`,
    they fall in one random stretch of that length instead.
    """
    lo, hi = span
    if max_gap_s and hi - lo > max_gap_s:
        lo = rng.uniform(lo, hi - max_gap_s)
        hi = lo + max_gap_s
    while True:
        starts = rng.uniform(lo, hi, n)
        if len(np.unique(starts)) == n:
            return starts


def flow_images(clip: torch.Tensor) -> torch.Tensor:
    """Optical flow of a uint8 clip [T, 3, S, S] as float16 flow images [T, 3, S, S]: dx, dy
    and magnitude from each frame to the next (the last repeats the one before), in pixels per
    step scaled to a 32-px frame and clipped to +-8.

    OpenCV's DIS (Kroeger et al. 2016, the plain `opencv-python-headless` wheel) at its fast
    preset: about 1 ms or less per pair at 64-112 px on one core, where Dual TV-L1, the
    two-stream networks' usual choice, needs the contrib wheel and 40-135 ms; a learned flow
    (RAFT) would need weights and a GPU in every DataLoader worker.
    """
    import cv2

    cv2.setNumThreads(1)  # DataLoader workers already fill the cores
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
            for f in clip.permute(0, 2, 3, 1).contiguous().numpy()]
    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    flows = [dis.calc(a, b, None) for a, b in zip(grey[:-1], grey[1:], strict=True)]
    flow = np.stack(flows + flows[-1:] if flows else [np.zeros((*grey[0].shape, 2), np.float32)])
    flow *= 32 / clip.shape[-1]
    mag = np.linalg.norm(flow, axis=-1, keepdims=True)
    out = np.clip(np.concatenate([flow, mag], axis=-1), -8, 8)
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(torch.float16)


def clip_augment(size: int, cfg: ClipConfig):
    """One random augmentation per call, applied identically to every frame of a clip.

    torchvision's v2 transforms draw their parameters once per call on a Video [T, 3, H, W],
    which is exactly temporal consistency.
    """
    from hiermovie._compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    from torchvision.transforms import v2

    kernel = max(3, size // 10) | 1
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(cfg.min_crop_area, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=cfg.jitter),
        v2.RandomGrayscale(cfg.grayscale),
        v2.RandomApply([v2.GaussianBlur(kernel, (0.1, 2.0))], p=cfg.blur),
    ])


class MultiClipDataset(torch.utils.data.Dataset):
    """Sample i -> {"clips": uint8 [n(+1), T, 3, S, S], "video", "groups": [n(+1)], "starts"},
    with `labels` also the video's "label", with `flow` each clip's "flow" images (computed
    here, in the DataLoader's workers, after the augmentation: flow crop = RGB crop).

    Samples come in runs of `per_video` from one video: run j = i // per_video reads video
    `perm_e[j % N]` of epoch e = j // N, sample k = i % per_video of the run takes its clips from
    the k-th of `per_video` equal stretches of the video. Clips with the same group id are
    positives: the video's (CVRL) or, with per_video > 1, the sample's own; a static negative
    comes last with group -1 (positive to nothing). A video that cannot be read is reported
    once and replaced by the next one in the permutation.
    """

    def __init__(self, paths: list[str], cfg: ClipConfig, size: int, seed: int = 0, *,
                 labels: list[int] | None = None, flow: bool = False) -> None:
        self.paths, self.cfg, self.size, self.seed = paths, cfg, size, seed
        self.labels, self.flow = labels, flow
        self.augment = clip_augment(size, cfg)
        self._meta: dict[int, tuple[tuple[int, int], np.ndarray, float]] = {}
        self._bad: dict[int, str] = {}
        self._perm: tuple[int, np.ndarray] = (-1, np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.paths)

    def video_of(self, i: int) -> int:
        epoch, k = divmod(i, len(self.paths))
        if self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(
                len(self.paths)))
        return int(self._perm[1][k])

    def __getitem__(self, i: int) -> dict:
        run = i // self.cfg.per_video
        for k in range(len(self.paths)):
            v = self.video_of(run + k)
            if v in self._bad:
                continue
            try:
                return self._sample(i, v)
            except BadVideo as e:
                self._bad[v] = str(e)
                print(f"pretrain-backbone: skipping {e}", flush=True)
        raise BadVideo(f"none of the {len(self.paths)} videos could be read")

    def _probe(self, v: int) -> tuple[tuple[int, int], np.ndarray, float]:
        if v not in self._meta:
            path = self.paths[v]
            # a little larger than the crop, like the usual resize-then-crop recipes
            with readable(path) as source:
                width, height = decode_size(source, (self.size * 8 // 7,) * 2,
                                            "short_side_crop", name=path)
                vr = open_video(source, width, height, name=path)
                try:
                    times, duration = frame_times(vr, path)
                except decoder_errors() as e:
                    raise BadVideo(f"{path}: cannot read frame times: {e}") from None
                del vr
            self._meta[v] = ((width, height), times, duration)
        return self._meta[v]

    def _sample(self, i: int, v: int) -> dict:
        cfg, path = self.cfg, self.paths[v]
        (width, height), times, duration = self._probe(v)
        rng = np.random.default_rng([self.seed, i])
        span = duration - cfg.span_s
        if span <= 0:
            raise BadVideo(f"{path}: video is {duration:.2f} s; clips of {cfg.span_s:.2f} s "
                           "need a longer one")
        k, part = i % cfg.per_video, span / cfg.per_video
        starts = clip_starts(rng, (k * part, (k + 1) * part), cfg.clips, cfg.max_gap_s)
        offsets = cfg.steps / cfg.target_fps
        idx = frames_at(times, (starts[:, None] + offsets).ravel())
        unique, inverse = np.unique(idx, return_inverse=True)
        try:
            with readable(path) as source:
                vr = open_video(source, width, height, name=path)
                frames = get_frames(vr, source, unique.tolist(), width, height,
                                    name=path)[inverse]
                del vr
        except decoder_errors() as e:
            raise BadVideo(f"{path}: decoding failed: {str(e).splitlines()[0][:200]}") from None
        video = torch.from_numpy(frames).permute(0, 3, 1, 2)  # [n*T, 3, H, W]
        torch.manual_seed(int(rng.integers(2**62)))  # the transforms draw from torch's RNG
        from torchvision import tv_tensors

        parts = list(video.split(cfg.num_frames))
        if cfg.static_negative:  # augmented together with the first clip: same crop, colours
            parts[0] = torch.cat([parts[0], parts[0][:1].expand_as(parts[0])])
        clips = [c for p in parts for c in self.augment(tv_tensors.Video(p)).as_subclass(
            torch.Tensor).split(cfg.num_frames)]
        group = v if cfg.per_video == 1 else i
        groups = torch.full((len(clips),), group)
        if cfg.static_negative:
            groups[1] = -1  # positive to nothing
            clips.append(clips.pop(1))
            groups = torch.cat([groups[:1], groups[2:], groups[1:2]])
        out = {"clips": torch.stack(clips), "video": v, "groups": groups, "starts": starts}
        if self.flow:
            out["flow"] = torch.stack([flow_images(c) for c in clips])
        if self.labels is not None:
            out["label"] = self.labels[v]
        return out
