"""The model side of extraction, free of Ray so it can be run and tested directly."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from hiermovie.config import ConfigError
from hiermovie.hardware import return_freed_buffers
from hiermovie.pipeline.backbones import (
    Backbone,
    BackboneConfig,
    encode,
    fingerprint,
    fold_batchnorm,
    load_backbone,
    precision_dtype,
)
from hiermovie.pipeline.decode import decode_video
from hiermovie.pipeline.plans import PlanConfig


@dataclass(frozen=True)
class BackboneInfo:
    """What a model actor loaded, as the store's provenance records it; or why it refused."""

    dim: int = 0
    input_size: int = 0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    fingerprint: str = ""
    origin: dict = field(default_factory=dict)
    precision: str = ""
    refused: str = ""  # the one-line reason a backbone could not be used


class ModelWorker:
    """Holds one frozen backbone on one device and encodes videos' frames.

    A backbone it must refuse (a checkpoint that would run code, weights that do not fit) is
    kept as the refusal and returned by `describe`, not raised: raised in a Ray actor's
    constructor it reaches the user as a 30-line `ActorDiedError` after two restarts."""

    def __init__(self, cfg: BackboneConfig, device: str = "auto", threads: int = 0,
                 clips: int = 1, clip_pool: str = "mean") -> None:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if threads:
            torch.set_num_threads(threads)
        return_freed_buffers()  # a film's parts come and go: memory flat in its length
        self.cfg = cfg
        self.clips, self.clip_pool = clips, clip_pool  # model inputs per segment, and how
        self.device = torch.device(device)
        self.refused = ""
        try:
            self.model = load_backbone(cfg)
        except ConfigError as e:
            self.refused = str(e)
            return
        self.fingerprint = fingerprint(self.model)  # of the weights as loaded, before folding
        fold_batchnorm(self.model)  # one op less per conv: ~10% faster r2plus1d_18 on CPU
        self.model = self.model.to(self.device)
        if self.model.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)

    def __call__(self, *videos: np.ndarray | None) -> list[np.ndarray | None]:
        """Features [S, K, D] for each video's (or part of a video's) frames [S * clips, T, H,
        W, 3]; None (a part its decoder could not read) gives None.

        On CPU each one is encoded on its own, so results never depend on which happened to
        share a call (bitwise-reproducible stores); on GPU their segments are batched together.
        """
        if self.device.type == "cpu":
            return [None if v is None else self._per_segment(
                encode(self.model, v, self.cfg, self.device)) for v in videos]
        given = [v for v in videos if v is not None]
        counts = [len(v) for v in given]
        feats = iter(np.split(encode(self.model, np.concatenate(given), self.cfg, self.device),
                              np.cumsum(counts)[:-1]) if given else [])
        return [None if v is None else self._per_segment(next(feats)) for v in videos]

    def _per_segment(self, feats: np.ndarray) -> np.ndarray:
        """[S * clips, K, D] -> one row a segment: the clips' mean, or their tokens side by
        side (`clip_pool`)."""
        if self.clips == 1:
            return feats
        f = feats.reshape(-1, self.clips, *feats.shape[1:])
        return f.mean(1) if self.clip_pool == "mean" else f.reshape(f.shape[0], -1, f.shape[-1])

    def describe(self, num_frames: int) -> BackboneInfo:
        """What the store's provenance needs; runs one forward to check the input shape fits.
        A refused backbone gives only the one-line reason (`refused`)."""
        if self.refused:
            return BackboneInfo(refused=self.refused)
        size = self.model.input_size
        # a full batch: kernels for the shape real calls use are built now, not mid-run
        probe = np.zeros((self.cfg.batch_size, num_frames, size, size, 3), np.uint8)
        try:
            feats = encode(self.model, probe, self.cfg, self.device)
        except RuntimeError as e:
            return BackboneInfo(refused=f"backbone {self.cfg.name!r} cannot take {num_frames} "
                                        f"frames of {size}x{size}: {str(e).splitlines()[0]}")
        return BackboneInfo(
            dim=int(feats.shape[-1]), input_size=size, mean=tuple(self.model.mean),
            std=tuple(self.model.std), fingerprint=self.fingerprint,
            origin=dict(self.model.origin),
            precision=str(precision_dtype(self.cfg.precision, self.device)).replace("torch.", ""))


@torch.no_grad()
def encode_video(models: list[Backbone], path: str, plan: PlanConfig, cfgs: list[BackboneConfig],
                 device: torch.device | str = "cpu") -> list[np.ndarray]:
    """One video's segment features [S, K, D] from each model, as extract computes them
    (decoded by `plan` at the model's input size, once for the models sharing one, then
    `encode`d): for backbones being trained or compared, outside a job."""
    frames: dict[int, np.ndarray] = {}
    out = []
    for model, cfg in zip(models, cfgs, strict=True):
        size = model.input_size
        if size not in frames:
            frames[size] = decode_video(path, plan, (size, size)).frames
        out.append(encode(model, frames[size], cfg, device))
    return out
