"""pretrain-ctx's options: the stores and videos, the objective and the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from hiermovie.config import opt
from hiermovie.contextualizer.model import ContextualizerShape
from hiermovie.contextualizer.predictors import MaskSpec
from hiermovie.workflows.training import TrainingConfig, job_default


@dataclass
class PretrainCtxConfig(TrainingConfig):
    store: list[str] = opt([], "feature store(s) written by `extract` (comma-separated: e.g. "
                           "an unlabelled pool and the labelled training clips)")
    objective: Literal["mask", "supervised"] = opt(
        "mask", "mask prediction (the method), or verb and relation labels of --data's "
        "training clips (the probe's positive control)")
    data: str = opt("", "vidsitu:ROOT: its validation clips are never trained on; the labels "
                    "of --objective supervised")
    videos: str = opt("", "which videos: empty = every video of the stores, split:NAME = "
                      "--data's split NAME, or a file of ids (one per line)")
    out: str = job_default("out", "runs/ctx")
    model: ContextualizerShape = opt(default_factory=ContextualizerShape)
    mask: MaskSpec = opt(default_factory=MaskSpec)
    ema_momentum: float = opt(0.996, "ema: the teacher's momentum at the start (cosine to 1)")
    decay: Literal["all", "weights"] = opt(
        "all", "AdamW weight decay on every parameter, or on weight matrices only (not on "
        "biases, norms, the mask token and embeddings, as BERT and MAE)")
    window: int = opt(0, "train on windows of this many segments (0 = whole videos)")
    val_fraction: float = opt(0.1, "of the selected videos, held out for validation (always "
                              "at least one; never trained on)")
    val_every: int = opt(200, "validate every N steps")
    keep: Literal["last", "best"] = opt(
        "last", "the model written at the end: the last step's, or the validated one with the "
        "lowest validation loss (early stopping: a small labelled set is soon memorised)")
    storage_options: dict = opt({}, "fsspec options for the store")

    # the mask fields' names before they were nested under `mask` (kept for this release)
    ALIASES: ClassVar[dict[str, str]] = {
        "mask_ratio": "mask.ratio", "mask_count": "mask.count", "mask_span": "mask.span",
        "mask_mode": "mask.mode", "target": "mask.target", "target_norm": "mask.norm",
        "ema_layers": "mask.ema_layers", "loss": "mask.loss", "temperature": "mask.temperature",
        "visible_weight": "mask.visible_weight"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.val_every < 1:
            raise ValueError("val_every: must be >= 1")
        if self.mask.target == "ema" and not self.mask.ema_layers <= self.model.layers:
            raise ValueError(f"mask.ema_layers: must be in [1, model.layers={self.model.layers}]")
        if not 0 < self.ema_momentum < 1:
            raise ValueError("ema_momentum: must be in (0, 1)")
        if not 0 < self.val_fraction < 1:
            raise ValueError("val_fraction: must be in (0, 1): validation needs held-out videos")
        if self.objective == "supervised" and not self.data:
            raise ValueError("data: --objective supervised needs vidsitu:ROOT (its labels)")
        if self.videos.startswith("split:") and not self.data:
            raise ValueError("videos: split:NAME needs --data vidsitu:ROOT")
