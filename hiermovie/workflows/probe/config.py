"""The probe jobs' configs: one per evaluation, each holding only the fields it reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np

from hiermovie.config import ConfigError, opt
from hiermovie.contextualizer.model import ContextualizerShape
from hiermovie.hardware import resolve_precision

T = TypeVar("T")

Row = Literal["backbone", "random_frozen", "random_selfonly", "scratch", "pretrained_frozen",
              "pretrained", "positive_control"]
Task = Literal["verb", "relation", "roles"]


@dataclass
class FinetuneConfig:
    """How the fine-tuned rows (scratch, pretrained) train the contextualizer with the heads."""

    # defaults: benchmarks/finetune_recipe.py (BENCHMARKS.md, "Fine-tune recipe")
    ctx_lr_scale: float = opt(1.0, "the contextualizer's learning rate, as a multiple of the "
                              "heads' (chosen per row on held-out training clips)")
    layer_decay: float = opt(1.0, "layer-wise decay: layer l of L trains at "
                             "ctx_lr * decay^(L - l), its input projection at decay^(L + 1)")
    warmup_epochs: float = opt(0.0, "linear learning-rate warm-up, in epochs")
    readout: Literal["last", "mean", "infill"] = opt(
        "last", "what the heads read: the last layer, the mean of every layer's output, or "
        "infill: the last layer and the output with the event itself masked (what the "
        "neighbours say of it)")
    concat_own: bool = opt(True, "heads read each event's own (standardised) backbone feature "
                           "next to its contextualized one")

    def __post_init__(self) -> None:
        if self.ctx_lr_scale < 0 or not 0 < self.layer_decay <= 1 or self.warmup_epochs < 0:
            raise ValueError("ctx_lr_scale >= 0, 0 < layer_decay <= 1, warmup_epochs >= 0")


@dataclass(frozen=True)
class HeadSchedule:
    """How both probes train their heads: the values of their config the fits read."""

    lrs: tuple[float, ...]
    epochs: int
    eval_every: int
    batch_size: int
    precision: str

    def checkpoint_at(self, epoch: int) -> bool:
        """A candidate epoch count: every `eval_every` epochs, and the last."""
        return epoch % self.eval_every == 0 or epoch == self.epochs


@dataclass
class Selection:
    """How each row's learning rate and epochs are chosen: on held-out *training* clips."""

    select_fraction: float = opt(0.2, "training clips held out to choose each row's learning "
                                 "rate and epochs (never the validation clips)")
    lrs: list[float] = opt([3e-4, 1e-3, 3e-3], "learning rates tried per row")
    epochs: int = opt(60, "most epochs of the verb and relation heads")
    eval_every: int = opt(10, "candidate epoch counts: every N epochs")

    def selection(self, items: list[T]) -> tuple[list[T], list[T]]:
        """(selection, fit): a seeded `select_fraction` of `items` (at least one) and the rest
        (at least one: the heads need something to train on), each in the given order."""
        order = np.random.RandomState(0).permutation(len(items))
        n_sel = min(len(items) - 1, max(1, round(self.select_fraction * len(items))))
        return ([items[i] for i in sorted(order[:n_sel])],
                [items[i] for i in sorted(order[n_sel:])])

    def __post_init__(self) -> None:
        if not 0 < self.select_fraction < 1:
            raise ValueError("select_fraction: must be in (0, 1)")
        if not self.lrs or min(self.lrs) <= 0:
            raise ValueError("lrs: one or more positive learning rates")
        if self.epochs < 1 or not 1 <= self.eval_every <= self.epochs:
            raise ValueError("epochs >= 1 and 1 <= eval_every <= epochs")


@dataclass
class RowsConfig(Selection):
    """What both probes of feature rows read: the store, the contextualizers, the heads."""

    store: str = opt("", "feature store of the clips; several, comma-separated, are joined: "
                     "each segment's features concatenated (their segments must line up)")
    contextualizer: str = opt("", "folder of a pretrained contextualizer (pretrain-ctx output): "
                              "the pretrained rows, and the shape of the random ones")
    positive_control: str = opt("", "folder of a contextualizer trained with labels "
                                "(pretrain-ctx --objective supervised): the positive_control row")
    model: ContextualizerShape = opt(default_factory=ContextualizerShape)
    head: Literal["mlp", "linear"] = opt("mlp", "VidSitu-style MLP heads or linear probes")
    seeds: int = opt(3, "seeds per row (each its own heads, data order and label subset)")
    batch_size: int = opt(64, "batch size of the heads")
    precision: Literal["auto", "fp32", "bf16"] = opt(
        "auto", "heads' training arithmetic: bf16 autocast (float32 weights) or fp32; auto = "
        "bf16 where the processor has native bfloat16 (recorded in results.json)")
    progress: bool = opt(True, "show a progress bar")
    storage_options: dict = opt({}, "fsspec options for the stores")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seeds < 1 or self.batch_size < 1:
            raise ValueError("seeds and batch_size: must be >= 1")
        # "auto" resolved once, here: every fit of the run, and results.json, read the
        # arithmetic the heads train in (heads train on the CPU)
        self.precision = resolve_precision(self.precision)

    def schedule(self) -> HeadSchedule:
        """The heads' schedule."""
        return HeadSchedule(tuple(self.lrs), self.epochs, self.eval_every, self.batch_size,
                            self.precision)


@dataclass
class VidSituProbeConfig(RowsConfig):
    data: str = opt("", "vidsitu:ROOT (the annotations)")
    fuse_store: str = opt("", "a second store (e.g. imported object features) whose per-segment "
                          "features are concatenated to the heads' input, as in the paper's "
                          "Object transformer ++ row; the contextualizer still sees `store`'s")
    rows: list[Row] = opt([], "rows to evaluate (empty = every row the given contextualizers "
                          "allow)")
    tasks: list[Task] = opt(["verb", "relation", "roles"], "tasks: verb, relation, roles")
    hidden: int = opt(0, "hidden width of every row's MLP heads (0 = half the widest row's "
                      "input, so the backbone row's heads have the others' capacity)")
    finetune: FinetuneConfig = opt(default_factory=FinetuneConfig)
    train_fraction: list[float] = opt([1.0], "label-efficiency: train on these fractions of the "
                                      "labelled training clips (e.g. 0.01,0.1,0.25,1.0)")
    train_clips: list[int] = opt([], "or on these numbers of labelled clips (instead of "
                                 "train_fraction)")
    role_epochs: int = opt(15, "epochs of the role decoder")
    out: str = opt("runs/probe", "output folder: tables, JSON, charts, prediction files")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.role_epochs < 1:
            raise ValueError("role_epochs: must be >= 1")
        if not self.tasks:
            raise ValueError("tasks: at least one of verb, relation, roles")
        if any(not 0 < f <= 1 for f in self.train_fraction):
            raise ValueError("train_fraction: each must be in (0, 1]")
        if any(n < 1 for n in self.train_clips):
            raise ValueError("train_clips: each must be >= 1")

    def label_counts(self, pool: int) -> list[int]:
        """The label counts to train at, for a labelled pool of `pool` clips."""
        if self.train_clips and self.train_fraction != [1.0]:
            raise ConfigError("train_clips: give train_clips or train_fraction, not both")
        counts = self.train_clips or [max(1, round(f * pool)) for f in self.train_fraction]
        if max(counts) > pool:
            raise ConfigError(f"train_clips: {max(counts)} asked, the labelled pool has {pool} "
                              "clips (the training clips less the selection clips)")
        return sorted(set(counts))


@dataclass
class LvuProbeConfig(RowsConfig):
    data: str = opt("", "lvu:ROOT (the nine tasks' label files)")
    rows: list[Row] = opt([], "frozen rows to evaluate (empty = every frozen row the given "
                          "contextualizers allow; fine-tuned rows are VidSitu-only)")
    tasks: list[str] = opt([], "LVU tasks to probe (empty = all nine)")
    window: int = opt(30, "segments per window (e.g. 30 two-second segments = 60 s)")
    out: str = opt("runs/probe-lvu", "output folder: table and JSON")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window < 1:
            raise ValueError("window: must be >= 1")


@dataclass
class ScoreConfig:
    data: str = opt("", "vidsitu:ROOT (the validation annotations)")
    predictions: str = opt("", "prediction file (.json, or a leaderboard .pkl)")
    task: Task = opt("verb", "what the file predicts")
