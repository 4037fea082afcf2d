"""`hiermovie pretrain-ctx`: mask-prediction pretraining of the contextualizer from a store.

One training loop, nanoGPT-style. Every step seeds its own randomness from (seed, step, rank),
and the data order of each epoch is a seeded permutation, so a run resumed from a checkpoint
repeats exactly the steps an uninterrupted run would have taken. Runs under `torchrun` with DDP.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from hiermovie.config import opt
from hiermovie.contextualizer import (
    Contextualizer,
    ContextualizerConfig,
    mask_loss,
    random_mask,
    targets,
)
from hiermovie.contextualizer.objectives import Loss
from hiermovie.feature_store import FeatureStore, SequenceDataset, pad_collate
from hiermovie.progress import progress
from hiermovie.workflows.training import (
    TrainingConfig,
    cosine_lr,
    finish_distributed,
    init_distributed,
    load_checkpoint,
    open_metrics,
    optimizer_step,
    pick_device,
    plot_curve,
    save_checkpoint,
)


@dataclass
class CtxModelConfig:
    width: int = opt(1024, "transformer width")
    layers: int = opt(3, "encoder layers")
    heads: int = opt(8, "attention heads")
    ffn: int = opt(2048, "feed-forward width")
    dropout: float = opt(0.1, "dropout")
    token_mode: str = opt("pool", "K tokens per segment: pool them, or flatten into the sequence")
    position: str = opt("index", "positions from segment order (index) or start time (time)")

    def __post_init__(self) -> None:
        if self.width % self.heads or self.width % 2:
            raise ValueError("model.width: must be even and divisible by model.heads")
        if self.token_mode not in ("pool", "flatten"):
            raise ValueError("model.token_mode: must be 'pool' or 'flatten'")
        if self.position not in ("index", "time"):
            raise ValueError("model.position: must be 'index' or 'time'")


@dataclass
class PretrainCtxConfig(TrainingConfig):
    store: str = opt("", "feature store written by `extract`")
    out: str = opt("runs/ctx", "output folder: checkpoints, metrics, the trained model")
    model: CtxModelConfig = opt(default_factory=CtxModelConfig)
    loss: Loss = opt("l2", "l2 on normalised targets, cosine, or infonce")
    temperature: float = opt(0.1, "infonce temperature")
    mask_ratio: float = opt(0.3, "fraction of a sequence's segments masked (at least one)")
    mask_count: int = opt(0, "mask exactly this many segments instead (0 = use the ratio)")
    mask_span: int = opt(1, "mask contiguous runs of this many segments")
    window: int = opt(0, "train on windows of this many segments (0 = whole videos)")
    val_fraction: float = opt(0.1, "videos held out for validation")
    val_every: int = opt(200, "validate every N steps")
    storage_options: dict = opt({}, "fsspec options for the store")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.mask_ratio < 1:
            raise ValueError("mask_ratio: must be in (0, 1)")
        for name in ("val_every", "mask_span"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1")
        if not 0 <= self.val_fraction < 1:
            raise ValueError("val_fraction: must be in [0, 1)")


def split_videos(ids: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """A stable split by hashed id: the same video is held out whatever else is in the store."""
    def held_out(v: str) -> bool:
        return int(hashlib.sha1(v.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < val_fraction
    val = [v for v in ids if held_out(v)]
    train = [v for v in ids if not held_out(v)]
    return train, (val or train[-max(1, len(train) // 10):])


class Batches:
    """Seeded epoch permutations of a dataset, addressable by global step (exact resume)."""

    def __init__(self, ds: SequenceDataset, batch_size: int, seed: int, rank: int = 0,
                 world: int = 1) -> None:
        self.ds, self.bs, self.seed, self.rank, self.world = ds, batch_size, seed, rank, world
        self.per_epoch = max(1, len(ds) // (batch_size * world))
        self._epoch, self._mine = -1, []

    def __call__(self, step: int) -> dict[str, Any]:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:  # this rank's share of the epoch's permutation, once
            g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            order = torch.randperm(len(self.ds), generator=g).tolist()
            self._epoch, self._mine = epoch, order[self.rank::self.world]
        mine = self._mine
        idx = [mine[(i * self.bs + j) % len(mine)] for j in range(self.bs)]
        return pad_collate([self.ds[k] for k in idx])


class MaskPredictor(torch.nn.Module):
    """The contextualizer plus the small head that predicts masked segments' features."""

    def __init__(self, ctx: Contextualizer, dim: int) -> None:
        super().__init__()
        self.ctx = ctx
        self.head = torch.nn.Linear(ctx.config.width, dim)

    def forward(self, feats: torch.Tensor, valid: torch.Tensor, masked: torch.Tensor,
                start_s: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.ctx(feats, valid, masked, start_s)[masked])


def masked_loss(model: torch.nn.Module, batch: dict[str, Any], cfg: PretrainCtxConfig,
                device: torch.device, generator: torch.Generator) -> torch.Tensor:
    feats = batch["features"].to(device)
    valid = batch["mask"].to(device)
    masked = random_mask(valid, ratio=cfg.mask_ratio, count=cfg.mask_count, span=cfg.mask_span,
                         generator=generator)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        pred = model(feats, valid, masked, batch["start_s"].to(device))
    return mask_loss(pred, targets(feats)[masked], cfg.loss, cfg.temperature)


@torch.no_grad()
def evaluate(model: MaskPredictor, val: SequenceDataset,
             cfg: PretrainCtxConfig, device: torch.device, mean_target: torch.Tensor | None = None,
             ) -> float:
    """Validation loss with fixed masks; with `mean_target`, the loss of predicting it."""
    model.eval()
    total, n = 0.0, 0
    g = torch.Generator().manual_seed(12345)
    for i in range(0, len(val), cfg.batch_size):
        batch = pad_collate([val[j] for j in range(i, min(i + cfg.batch_size, len(val)))])
        feats, valid = batch["features"].to(device), batch["mask"].to(device)
        masked = random_mask(valid, ratio=cfg.mask_ratio, count=cfg.mask_count,
                             span=cfg.mask_span, generator=g)
        tgt = targets(feats)[masked]
        if mean_target is not None:
            pred = mean_target.expand_as(tgt)
        else:
            pred = model(feats, valid, masked, batch["start_s"].to(device))
        total += mask_loss(pred, tgt, cfg.loss, cfg.temperature).item() * len(tgt)
        n += len(tgt)
    model.train()
    return total / max(n, 1)


def run_pretrain_ctx(cfg: PretrainCtxConfig) -> int:
    """Pretrain the contextualizer by mask prediction on the features of `cfg.store`."""
    from hiermovie.config import ConfigError

    if not cfg.store:
        raise ConfigError("store: required (a store written by `hiermovie extract`)")
    rank, world = init_distributed()
    device = pick_device(cfg.device, world)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(cfg.store, storage_options=cfg.storage_options or None)
    prov = store.provenance
    train_ids, val_ids = split_videos(store.videos(), cfg.val_fraction)
    if not train_ids:
        raise ConfigError(f"{cfg.store}: no videos with features to train on")
    window = cfg.window or None
    train_ds = SequenceDataset(store, train_ids, window=window, stride=window)
    val_ds = SequenceDataset(store, val_ids, window=window, stride=window)

    torch.manual_seed(cfg.seed)
    mcfg = ContextualizerConfig(in_dim=prov.dim, tokens_per_segment=prov.tokens_per_segment,
                                **asdict(cfg.model))
    model = MaskPredictor(Contextualizer(mcfg), prov.dim).to(device)
    opt_ = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(model)

    ckpt = out / "checkpoint.pt"
    start = 0
    baselines: dict[str, float] = {}
    if cfg.resume and ckpt.exists():
        state = load_checkpoint(ckpt)
        model.load_state_dict(state["model"])
        opt_.load_state_dict(state["optimizer"])
        start = int(state["step"])
        baselines = dict(state["baselines"])
    elif cfg.resume and rank == 0:
        print(f"pretrain-ctx: no checkpoint in {out}; starting from scratch")

    batches = Batches(train_ds, cfg.batch_size, cfg.seed, rank, world)
    # baselines on the same validation masks: predicting the mean target, an untrained model
    mean_target = torch.stack([targets(train_ds[i]["features"].float()[None])[0].mean(0)
                               for i in range(min(len(train_ds), 512))]).mean(0).to(device)
    if start == 0:
        baselines = {"mean_feature": evaluate(model, val_ds, cfg, device, mean_target),
                     "untrained": evaluate(model, val_ds, cfg, device)}

    log = open_metrics(out, start) if rank == 0 else None
    bar = progress(total=cfg.steps, initial=start, desc="pretrain-ctx", unit="step",
                   enabled=rank == 0 and cfg.progress)
    last_val = float("nan")
    done = start
    t0, waited = time.time(), 0.0
    model.train()
    for step in range(start, cfg.steps):
        torch.manual_seed(cfg.seed * 1_000_003 + step * world + rank)  # dropout, per step
        g = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + step * world + rank)
        tw = time.time()
        batch = batches(step)
        waited += time.time() - tw
        lr = cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps)
        loss = masked_loss(ddp_model, batch, cfg, device, g)
        optimizer_step(opt_, loss, lr, cfg.grad_clip)
        done = step + 1
        record: dict[str, Any] = {"step": done, "loss": loss.item(), "lr": lr}
        if done % cfg.val_every == 0 or done == cfg.steps:
            last_val = evaluate(model, val_ds, cfg, device)
            record["val_loss"] = last_val
        bar.update()
        if log:
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{record['loss']:.4f}", val=f"{last_val:.4f}",
                            refresh=False)  # the bar redraws at its own pace
        if rank == 0 and (done % cfg.ckpt_every == 0 or done == cfg.steps):
            save_checkpoint(ckpt, {"model": model.state_dict(), "optimizer": opt_.state_dict(),
                                   "step": done, "baselines": baselines})
        if cfg.stop_at and done >= cfg.stop_at:
            break
    bar.close()
    if log:
        log.close()
    if rank == 0 and done == cfg.steps:
        _finish(cfg, out, model, baselines, last_val, len(train_ds), len(val_ds),
                (time.time() - t0) / max(1, done - start), waited / max(1, done - start))
    finish_distributed()
    return 0


def _finish(cfg: PretrainCtxConfig, out: Path, model: MaskPredictor,
            baselines: dict[str, float], val: float, n_train: int, n_val: int, step_s: float,
            wait_s: float) -> None:
    model.ctx.save_pretrained(out / "contextualizer")
    from safetensors.torch import save_file

    save_file(model.head.state_dict(),
              str(out / "contextualizer" / "prediction_head.safetensors"))
    summary = {
        "store": cfg.store, "steps": cfg.steps, "train_sequences": n_train,
        "val_sequences": n_val, "loss": cfg.loss, "val_loss": val,
        "val_loss_mean_feature": baselines["mean_feature"],
        "val_loss_untrained": baselines["untrained"],
        "ratio_to_mean_feature": val / baselines["mean_feature"],
        "ratio_to_untrained": val / baselines["untrained"],
        "step_seconds": step_s, "data_wait_fraction": wait_s / max(step_s, 1e-9),
        "config": asdict(cfg),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot_curve(out, f"{cfg.loss} loss at masked segments",
               {"mean feature": baselines["mean_feature"], "untrained": baselines["untrained"]})
    print(f"pretrain-ctx: val loss {val:.4f} vs predicting the mean feature "
          f"{baselines['mean_feature']:.4f} and an untrained contextualizer "
          f"{baselines['untrained']:.4f}; model in {out / 'contextualizer'}")
