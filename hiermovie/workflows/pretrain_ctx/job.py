"""`hiermovie pretrain-ctx`: mask-prediction pretraining of the contextualizer from a store.

One training loop, nanoGPT-style. Every step seeds its own randomness from (seed, step, rank),
and the data order of each epoch is a seeded permutation, so a run resumed from a checkpoint
repeats exactly the steps an uninterrupted run would have taken. Runs under `torchrun` with DDP.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from hiermovie.contextualizer import Contextualizer, ContextualizerConfig
from hiermovie.contextualizer.collapse import collapse_check
from hiermovie.contextualizer.predictors import LabelPredictor, MaskPredictor
from hiermovie.workflows.pretrain_ctx.config import PretrainCtxConfig
from hiermovie.workflows.pretrain_ctx.data import CtxData, load_data
from hiermovie.workflows.pretrain_ctx.eval import evaluate, loss_on
from hiermovie.workflows.training import (
    Run,
    StepBatches,
    cosine_lr,
    ema_momentum,
    optimizer_step,
    plot_curve,
)


def run_pretrain_ctx(cfg: PretrainCtxConfig) -> int:
    """Pretrain the contextualizer by mask prediction on the features of `cfg.store`."""
    from hiermovie.config import ConfigError

    if not cfg.store:
        raise ConfigError("store: required (a store written by `hiermovie extract`)")
    run = Run(cfg, "pretrain-ctx")
    device, world, rank = run.device, run.world, run.rank
    data = load_data(cfg)
    torch.manual_seed(cfg.seed)
    mcfg = ContextualizerConfig(in_dim=data.provenance.dim,
                                tokens_per_segment=data.provenance.tokens_per_segment,
                                **asdict(cfg.model))
    model = (LabelPredictor(Contextualizer(mcfg), *data.classes) if data.classes
             else MaskPredictor(Contextualizer(mcfg), mcfg.in_dim, cfg.mask)).to(device)
    opt_ = torch.optim.AdamW(model.param_groups(cfg.weight_decay, cfg.decay), lr=cfg.lr)
    ddp_model = run.wrap(model)
    state = run.resume(model, opt_)
    baselines = dict(state.get("baselines", {})) or baselines_of(model, data, cfg, device)
    best = Best(run.out / "best.safetensors", state.get("best"), enabled=cfg.keep == "best")
    sampler = StepBatches(cfg.batch_size, rank, world, n=len(data.train), seed=cfg.seed)

    last_val, t0, waited = float("nan"), time.time(), 0.0
    model.train()
    for step in run.steps():
        torch.manual_seed(cfg.seed * 1_000_003 + step * world + rank)  # dropout, per step
        g = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + step * world + rank)
        tw = time.time()
        batch = data.collate([data.train[k] for k in sampler[step]])
        waited += time.time() - tw
        lr = cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps)
        loss = loss_on(ddp_model, batch, device, g)[0]
        if not run.loss_is_finite(loss, step):
            run.finish()
            return 1
        optimizer_step(opt_, loss, lr, cfg.grad_clip)
        if cfg.mask.target == "ema":
            model.ema_update(ema_momentum(step, cfg.steps, cfg.ema_momentum))
        done = step + 1
        record: dict[str, Any] = {"step": done, "loss": loss.item(), "lr": lr}
        if done % cfg.val_every == 0 or done == cfg.steps:
            last_val = record["val_loss"] = evaluate(model, data.val, data.collate,
                                                     cfg.batch_size, device)
            best.offer(model, last_val, done, save=rank == 0)
        run.end_step(record, {"baselines": baselines, "best": best.state()},
                     loss=f"{record['loss']:.4f}", val=f"{last_val:.4f}")
    if rank == 0 and run.finished:
        last_val = best.restore(model, last_val)
        if cfg.mask.target == "ema":  # the targets moved with the teacher: re-measure the baseline
            baselines["mean_feature"] = mean_baseline(model, data, cfg, device)
        steps_run = max(1, run.done - run.start)
        val_batch = held_out(data, device)
        _finish(cfg, run.out, model, baselines, last_val, data.selection,
                {**data.sizes, "kept_step": best.step or run.done},
                collapse_check(model.ctx, val_batch),
                (time.time() - t0) / steps_run, waited / steps_run)
    run.finish()
    return 0


def held_out(data: CtxData, device: torch.device, clips: int = 256) -> dict[str, torch.Tensor]:
    """Up to `clips` validation clips as one batch on `device`."""
    batch = data.collate([data.val[i] for i in range(min(len(data.val), clips))])
    return {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}


class Best:
    """With `enabled` (--keep best), the model of the lowest validation loss so far, on disk:
    the file is complete or the previous one, whatever kill comes mid-write."""

    def __init__(self, path: Path, state: dict | None, enabled: bool) -> None:
        self.path, self.enabled = path, enabled
        state = state or {"val_loss": float("inf"), "step": 0}
        self.val_loss, self.step = float(state["val_loss"]), int(state["step"])

    def state(self) -> dict[str, float]:
        return {"val_loss": self.val_loss, "step": self.step}

    def offer(self, model: torch.nn.Module, val_loss: float, step: int, save: bool) -> None:
        if self.enabled and val_loss < self.val_loss:
            self.val_loss, self.step = val_loss, step
            if save:
                tmp = self.path.with_suffix(".tmp")
                save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
                tmp.replace(self.path)

    def restore(self, model: torch.nn.Module, last_val: float) -> float:
        """Load the kept model; returns its validation loss (`last_val` when none was kept:
        no finite validation loss, or --keep last)."""
        if not (self.enabled and self.step):
            return last_val
        model.load_state_dict(load_file(str(self.path)))
        return self.val_loss


def baselines_of(model: torch.nn.Module, data: CtxData, cfg: PretrainCtxConfig,
                 device: torch.device) -> dict[str, float]:
    """On the same validation masks as training's: the untrained model, the mean target."""
    out = {"untrained": evaluate(model, data.val, data.collate, cfg.batch_size, device)}
    if not data.classes:
        out["mean_feature"] = mean_baseline(model, data, cfg, device)
    return out


def mean_baseline(model: torch.nn.Module, data: CtxData, cfg: PretrainCtxConfig,
                  device: torch.device) -> float:
    """Validation loss of predicting the training clips' mean target everywhere."""
    def mean_of(i: int) -> torch.Tensor:
        x = data.collate([data.train[i]])
        return model.targets(x["features"].to(device), x["mask"].to(device),
                             x["start_s"].to(device))[0].mean(0)
    mean = torch.stack([mean_of(i) for i in range(min(len(data.train), 512))]).mean(0)
    return evaluate(model, data.val, data.collate, cfg.batch_size, device, mean)


def _finish(cfg: PretrainCtxConfig, out: Path, model: torch.nn.Module,
            baselines: dict[str, float], val: float, selection: dict, sizes: dict,
            collapse: dict, step_s: float, wait_s: float) -> None:
    model.save_pretrained(out / "contextualizer")
    summary = {
        "stores": cfg.store, "objective": cfg.objective, "selection": selection, **sizes,
        "steps": cfg.steps, "loss": cfg.mask.loss if cfg.objective == "mask" else "cross-entropy",
        "val_loss": val, **{f"val_loss_{k}": v for k, v in baselines.items()},
        **{f"ratio_to_{k}": val / v for k, v in baselines.items()}, **collapse,
        "step_seconds": step_s, "data_wait_fraction": wait_s / max(step_s, 1e-9),
        "config": asdict(cfg),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    what = (f"{cfg.mask.loss} loss at masked segments" if cfg.objective == "mask"
            else "verb + relation cross-entropy")
    plot_curve(out, what, {k.replace("_", " "): v for k, v in baselines.items()})
    print(f"pretrain-ctx: val loss {val:.4f} vs "
          + ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in baselines.items())
          + (f"; clip share of the outputs' variance {collapse['clip_share_contextualizer']:.2f} "
             f"(backbone features {collapse['clip_share_backbone']:.2f})"
             if collapse["clip_share_backbone"] is not None else
             "; clip share: too few held-out clips to measure (needs 2, one of 2 segments)")
          + (f"; own segment found by a linear read-out {collapse['identity_readout']:.2f} "
             f"(chance {collapse['identity_chance']:.2f})"
             if collapse["identity_readout"] is not None else "")
          + f"; model in {out / 'contextualizer'}")
