"""What the two training jobs share: the run around the loop body (`Run`: resume, log,
checkpoint, DDP), the learning-rate and momentum schedules, the optimiser step, curves.
Checkpoints are `checkpoints`, DDP's setup `distributed`."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hiermovie.config import ConfigError, opt
from hiermovie.workflows.checkpoints import load_checkpoint, open_metrics, save_checkpoint
from hiermovie.workflows.distributed import (
    check_ranks_agree,
    finish_distributed,
    init_distributed,
    pick_device,
)
from hiermovie.workflows.progress import progress


@dataclass
class TrainingConfig:
    """The optimisation and run options both training jobs share (each job adds its own)."""

    out: str = opt("runs/train", "output folder: checkpoints, metrics, the trained model")
    batch_size: int = opt(32, "items per step (per process under DDP)")
    steps: int = opt(2000, "optimisation steps")
    lr: float = opt(3e-4, "peak learning rate (AdamW)")
    weight_decay: float = opt(0.05, "AdamW weight decay")
    warmup: int = opt(100, "linear warm-up steps before the cosine decay")
    grad_clip: float = opt(1.0, "gradient norm clip (0 = off)")
    ckpt_every: int = opt(500, "checkpoint every N steps")
    stop_at: int = opt(0, "stop after this step, as if interrupted (0 = run to the end)")
    resume: bool = opt(False, "continue from the latest checkpoint in `out`")
    seed: int = opt(0, "seed")
    device: str = opt("auto", "auto, cpu or cuda")
    progress: bool = opt(True, "show a progress bar")

    def __post_init__(self) -> None:
        for name in ("batch_size", "steps", "ckpt_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1")


def job_default(name: str, value: Any) -> Any:
    """A job's own default for a `TrainingConfig` field: the flag and its help stay the
    shared one's, only the value differs (e.g. pretrain-backbone's higher learning rate)."""
    return opt(value, TrainingConfig.__dataclass_fields__[name].metadata["help"])


class Run:
    """What every training job puts around its loop body, which stays in the job (nanoGPT
    style): ranks and device, resume, metrics.jsonl and the progress bar, checkpoints and
    `stop_at`. The log and the bar are closed on every exit of the loop."""

    def __init__(self, cfg: TrainingConfig, name: str) -> None:
        self.cfg, self.name = cfg, name
        self.rank, self.world = init_distributed()
        self.device = pick_device(cfg.device, self.world)
        if self.world > 1 and self.rank == 0:
            print(f"{name}: {self.world} processes (DDP), device {self.device.type}")
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.ckpt = self.out / "checkpoint.pt"
        self.start = self.done = self.saved = 0  # saved: the step of the last checkpoint

    def resume(self, model: torch.nn.Module, opt_: torch.optim.Optimizer) -> dict[str, Any]:
        """With --resume, the latest checkpoint into `model` and `opt_` (its whole state is
        returned, {} when there is none); the checkpoints this run writes hold both."""
        self.model, self.opt = model, opt_
        if self.cfg.resume and self.ckpt.exists():
            state = load_checkpoint(self.ckpt)
            try:
                model.load_state_dict(state["model"])
                opt_.load_state_dict(state["optimizer"])
            except (RuntimeError, ValueError, KeyError) as e:  # e.g. features of another width
                first = next((ln.strip() for ln in str(e).splitlines() if "mismatch" in ln),
                             str(e).splitlines()[0] if str(e) else type(e).__name__)
                raise ConfigError(f"resume: {self.ckpt} does not fit this run's model "
                                  f"({first[:200]}); start a new --out or drop --resume"
                                  ) from None
            self.start = self.done = self.saved = int(state["step"])
            return state
        if self.cfg.resume and self.rank == 0:
            print(f"{self.name}: no checkpoint in {self.out}; starting from scratch")
        return {}

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return torch.nn.parallel.DistributedDataParallel(model) if self.world > 1 else model

    def steps(self) -> Iterator[int]:
        """The steps from the checkpoint's to the last, or to `stop_at` (as if killed)."""
        self.log = open_metrics(self.out, self.start) if self.rank == 0 else None
        self.bar = progress(total=self.cfg.steps, initial=self.start, desc=self.name,
                            unit="step", enabled=self.rank == 0 and self.cfg.progress)
        try:
            for step in range(self.start, self.cfg.steps):
                yield step
                if self.cfg.stop_at and self.done >= self.cfg.stop_at:
                    return
        finally:
            self.bar.close()
            if self.log:
                self.log.close()

    def end_step(self, record: dict[str, Any], extra: dict[str, Any] | None = None,
                 **postfix: str) -> None:
        """After the body of step `record["step"]`: logged, shown, checkpointed when due
        (with `extra` beside the model and optimizer)."""
        self.done = record["step"]
        self.bar.update()
        if self.log:
            self.log.write(json.dumps(record) + "\n")
            self.log.flush()
            self.bar.set_postfix(refresh=False, **postfix)  # the bar redraws at its own pace
        if self.rank == 0 and (self.done % self.cfg.ckpt_every == 0 or self.finished):
            save_checkpoint(self.ckpt, {"model": self.model.state_dict(),
                                        "optimizer": self.opt.state_dict(), "step": self.done,
                                        **(extra or {})})
            self.saved = self.done

    def loss_is_finite(self, loss: torch.Tensor, step: int) -> bool:
        """False, having said so, when the step's loss is NaN/Inf on any rank: the job then
        stops before that update (Keras' TerminateOnNaN, Lightning's check_finite), so the
        last checkpoint written holds the last good weights, and exits non-zero. No rank
        steps alone: the verdict is all-reduced."""
        bad = (~torch.isfinite(loss.detach())).any().float()
        if self.world > 1:
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        if not bad.item():
            return True
        if self.rank == 0:
            kept = (f"{self.ckpt} (step {self.saved}) holds the last good weights"
                    if self.saved else "no checkpoint had been written yet")
            print(f"{self.name}: training loss is {loss.item()} at step {step + 1}; stopped "
                  f"before that update, nothing published; {kept}. Check the data (store "
                  "info) or lower --lr, then rerun (--resume true continues from it)",
                  file=sys.stderr)
            if self.log:
                self.log.write(json.dumps({"step": step + 1, "loss": None,
                                           "stopped": "non-finite loss"}) + "\n")
                self.log.flush()
        return False

    @property
    def finished(self) -> bool:
        return self.done == self.cfg.steps

    def finish(self) -> None:
        """Leave the process group, once every rank is seen to hold the same weights: each
        rank steps its own copy with all-reduced gradients, so a rank that trained without
        them would drift, and the saved model would be rank 0's alone."""
        if self.world > 1:
            check_ranks_agree(self.model)
        finish_distributed()


def optimizer_step(opt_: torch.optim.Optimizer, loss: torch.Tensor, lr: float,
                   grad_clip: float) -> None:
    for group in opt_.param_groups:
        group["lr"] = lr
    opt_.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        params = [p for group in opt_.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt_.step()


def cosine_lr(step: int, peak: float, warmup: int, total: int) -> float:
    """Linear warm-up to `peak`, then cosine decay to zero at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def ema_momentum(step: int, total: int, start: float) -> float:
    """A momentum target's momentum at `step`: `start` rising to 1 on a cosine (BYOL; the
    rho-BYOL backbone's target and the data2vec contextualizer teacher)."""
    return 1 - (1 - start) * (math.cos(math.pi * step / max(1, total)) + 1) / 2


def plot_curve(out: Path, ylabel: str, hlines: dict[str, float] | None = None) -> None:
    """loss.png from metrics.jsonl: training loss per step, validation points, baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=0.8, label="train")
    val = [r for r in rows if "val_loss" in r]
    if val:
        ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="validation")
    for (label, y), style in zip((hlines or {}).items(), [("--", "gray"), (":", "red")],
                                 strict=False):
        ax.axhline(y, ls=style[0], c=style[1], label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{out.name}: training curve")
    shown = [r["loss"] for r in rows] + [r["val_loss"] for r in val] + list(
        (hlines or {}).values())
    positive = [y for y in shown if y > 0]
    if positive and len(positive) == len(shown) and max(positive) / min(positive) > 100:
        ax.set_yscale("log")  # baselines orders of magnitude above the loss
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=120)
    plt.close(fig)


class StepBatches(torch.utils.data.Sampler):
    """Each training step's sample indices, addressed by global step, so that a resumed run
    draws exactly what an uninterrupted one would; rank `rank` of `world` takes its share.

    With `n` items: a seeded permutation of them per epoch, each rank a strided share of it.
    With `n` = 0: step s is the contiguous run of sample numbers (s * world + rank) *
    batch_size ..., for a dataset that makes each sample from its number (pretrain-backbone's
    clips). Iterated (a DataLoader's `batch_sampler`): the steps from `start` to `steps`."""

    def __init__(self, batch_size: int, rank: int = 0, world: int = 1, *, n: int = 0,
                 seed: int = 0, start: int = 0, steps: int = 0) -> None:
        self.bs, self.rank, self.world, self.n, self.seed = batch_size, rank, world, n, seed
        self.start, self.steps = start, steps
        self.per_epoch = max(1, n // (batch_size * world))
        self._epoch, self._mine = -1, []

    def __getitem__(self, step: int) -> list[int]:
        if not self.n:
            first = (step * self.world + self.rank) * self.bs
            return list(range(first, first + self.bs))
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:  # this rank's share of the epoch's permutation, once
            g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            order = torch.randperm(self.n, generator=g).tolist()
            self._epoch, self._mine = epoch, order[self.rank::self.world]
        mine = self._mine
        return [mine[(i * self.bs + j) % len(mine)] for j in range(self.bs)]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.steps):
            yield self[step]

    def __len__(self) -> int:
        return self.steps - self.start
