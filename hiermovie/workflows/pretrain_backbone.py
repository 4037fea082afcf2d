"""`hiermovie pretrain-backbone`: training level 1, the video backbone.

Level 1 of the hierarchy, from unlabelled clips: CVRL (InfoNCE between clips of one video at
different times), rho-BYOL (predict a momentum target's embedding of the video's other clips)
or MoDist (CVRL plus a cross-modal InfoNCE with a motion pathway over optical flow); or from
labelled action clips (`kinetics:ROOT`), supervised classification.

Clips are decoded by torch DataLoader worker processes rather than Ray tasks: the training
process consumes them in lock-step, DataLoader prefetches into the same process and pins
memory for the GPU, and under torchrun each rank simply owns its workers. Sample i of the run is
a pure function of (seed, i), so a resumed run repeats exactly the batches it would have seen.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hiermovie.config import ConfigError, opt
from hiermovie.datasets import data_root, load_input
from hiermovie.datasets.labelled import verb_clips
from hiermovie.datasets.manifest import class_names
from hiermovie.datasets.vidsitu import VidSitu
from hiermovie.diagnostics import verb_share
from hiermovie.pipeline.backbone_config import BackboneSource
from hiermovie.pipeline.backbones import (
    ARCHITECTURE_KEY,
    ORIGIN_KEY,
    Backbone,
    BackboneConfig,
    load_backbone,
)
from hiermovie.pipeline.backbones.inference import normalise
from hiermovie.pipeline.clips import ClipConfig, MultiClipDataset
from hiermovie.pipeline.plans import PlanConfig
from hiermovie.pipeline.ssl import ClipLearner, Objective
from hiermovie.pipeline.workers import encode_video
from hiermovie.workflows.training import (
    Run,
    StepBatches,
    TrainingConfig,
    cosine_lr,
    ema_momentum,
    job_default,
    optimizer_step,
    plot_curve,
)

# how the labelled check reads a clip: VidSitu's events, 16 frames 4 apart
VIDSITU_16X4 = PlanConfig(kind="vidsitu", num_frames=16, sampling_rate=4)


@dataclass
class PretrainBackboneConfig(TrainingConfig):
    input: str = opt("", "videos: folder, .csv/.jsonl manifest, vidsitu:ROOT, lvu:ROOT, "
                     "kinetics:ROOT (trimmed actions, the paper's level-1 data; labelled, as "
                     "supervised needs)")
    split: str = opt("train", "with vidsitu:ROOT or kinetics:ROOT, train on this split only "
                     "(empty = all splits)")
    out: str = job_default("out", "runs/backbone")
    backbone: BackboneSource = opt(default_factory=BackboneSource)  # weights: start from these
    objective: Objective = opt("cvrl", "cvrl (InfoNCE with negatives), rho_byol (no "
                               "negatives), modist (cvrl + cross-modal InfoNCE with a motion "
                               "pathway over optical flow) or supervised (the input's labels)")
    clip: ClipConfig = opt(default_factory=ClipConfig)
    proj_dim: int = opt(128, "projection (and rho-BYOL prediction) output size")
    hidden: int = opt(512, "hidden width of the projection and prediction MLPs")
    temperature: float = opt(0.1, "cvrl: InfoNCE temperature")
    momentum: float = opt(0.99, "rho_byol: target momentum at the start (rises to 1)")
    flow_weight: float = opt(1.0, "modist: weight of the RGB-flow term (MaCLR's "
                             "CONTRASTIVE_FLOW_WEIGHT)")
    motion_width: int = opt(16, "modist: the motion pathway's first-layer channels (MaCLR: 1/8 "
                            "of the RGB pathway's)")
    workers: int = opt(2, "DataLoader decoding processes per training process (0 = in-process)")
    steps: int = job_default("steps", 1000)
    lr: float = job_default("lr", 1e-3)
    warmup: int = job_default("warmup", 50)
    ckpt_every: int = job_default("ckpt_every", 200)
    labelled: str = opt("", "vidsitu:ROOT: before and after training, the verb's share of the "
                        "features' within-clip variance on its validation clips (summary.json "
                        "verb_share_at_start / verb_share): whether level 1 is about actions")
    labelled_clips: int = opt(200, "labelled: the first N validation clips")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("proj_dim", "hidden", "motion_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1")
        if self.objective in ("cvrl", "modist") and self.batch_size < 2:
            raise ValueError(f"batch_size: {self.objective} needs at least 2 videos per step "
                             "(negatives)")
        if self.flow_weight < 0:
            raise ValueError("flow_weight: must be >= 0")
        if self.batch_size % self.clip.per_video:
            raise ValueError("batch_size: must be a multiple of clip.per_video")
        if not 0 <= self.momentum < 1:
            raise ValueError("momentum: must be in [0, 1)")
        if self.workers < 0:
            raise ValueError("workers: must be >= 0")
        if self.labelled_clips < 2:
            raise ValueError("labelled_clips: must be >= 2")


def run_pretrain_backbone(cfg: PretrainBackboneConfig) -> int:
    """Train `cfg.backbone` on the videos of `cfg.input`; writes `out/backbone.safetensors`."""
    if not cfg.input:
        raise ConfigError("input: required (a folder, a manifest, vidsitu:ROOT or lvu:ROOT)")
    run = Run(cfg, "pretrain-backbone")
    device, world = run.device, run.world
    items = load_input(cfg.input, cfg.split)
    if len(items) < 2:
        raise ConfigError(f"{cfg.input}: need at least 2 videos, found {len(items)}")

    if cfg.labelled:  # the verb share's clips, found now: a wrong root fails before training
        verb_clips(data_root(cfg.labelled, "vidsitu"), cfg.labelled_clips)
    classes = class_names(items, cfg.input) if cfg.objective == "supervised" else []
    backbone = load_backbone(BackboneConfig(**vars(cfg.backbone), seed=cfg.seed))
    backbone.requires_grad_(True).train()
    size = backbone.input_size
    with torch.random.fork_rng(devices=[]):  # the heads' own seed, same on every rank
        torch.manual_seed(cfg.seed + 1)
        model = ClipLearner(backbone, backbone.dim, cfg.objective, cfg.proj_dim, cfg.hidden,
                            cfg.temperature, classes=len(classes), flow_weight=cfg.flow_weight,
                            motion_width=cfg.motion_width).to(device)
    if device.type == "cuda" and world > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # global BN, as in CVRL
    labels = [classes.index(it.label) for it in items] if classes else None
    data = MultiClipDataset([it.path for it in items], cfg.clip, size, cfg.seed, labels=labels,
                            flow=model.uses_flow)
    opt_ = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                             weight_decay=cfg.weight_decay)
    ddp_model = run.wrap(model)
    run.resume(model, opt_)
    loader = torch.utils.data.DataLoader(
        data, batch_sampler=StepBatches(cfg.batch_size, run.rank, world, start=run.start,
                                        steps=cfg.steps),
        num_workers=cfg.workers, pin_memory=device.type == "cuda",
        persistent_workers=False, prefetch_factor=4 if cfg.workers else None)

    loss_value = float("nan")
    t0, waited, tw = time.time(), 0.0, time.time()
    for step, batch in zip(run.steps(), loader, strict=False):  # steps may stop first
        waited += time.time() - tw
        lr = cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps)
        x = normalise(batch["clips"].to(device, non_blocking=True).transpose(2, 3), backbone)
        flow = (batch["flow"].to(device, non_blocking=True).permute(0, 1, 3, 2, 4, 5).float()
                if "flow" in batch else None)
        label = batch["label"].to(device) if "label" in batch else None
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = ddp_model(x, batch["groups"].to(device), flow, label)
        if not run.loss_is_finite(loss, step):
            run.finish()
            return 1
        optimizer_step(opt_, loss, lr, cfg.grad_clip)
        model.update_target(ema_momentum(step + 1, cfg.steps, cfg.momentum))
        loss_value = loss.item()
        run.end_step({"step": step + 1, "loss": loss_value, "lr": lr},
                     loss=f"{loss_value:.4f}")
        tw = time.time()
    if run.rank == 0 and run.finished:
        steps_run = max(1, run.done - run.start)
        _finish(cfg, run.out, backbone, len(items), (time.time() - t0) / steps_run,
                waited / max(time.time() - t0, 1e-9), loss_value, classes, device)
    run.finish()
    return 0


def verb_shares(backbone: Backbone, cfg: PretrainBackboneConfig, device: torch.device
                ) -> dict[str, float]:
    """`verb_share` of the features of `cfg.labelled`'s validation clips: the trained
    backbone's, and the untrained one's (`cfg.backbone` loaded again: the same weights the
    run started from, whether or not it was resumed)."""
    start = load_backbone(BackboneConfig(**vars(cfg.backbone), seed=cfg.seed)).to(device)
    (x0, x), ds, clips = labelled_features([start, backbone], cfg.backbone.name, cfg.labelled,
                                           cfg.labelled_clips, device)
    verbs = np.array([ds.majority_verbs(c) for c in clips])
    return {"verb_share_at_start": verb_share(x0, verbs), "verb_share": verb_share(x, verbs)}


@torch.no_grad()
def labelled_features(backbones: list[Backbone], name: str, labelled: str, clips: int,
                      device: torch.device | str = "cpu"
                      ) -> tuple[list[np.ndarray], VidSitu, list[str]]:
    """Each backbone's pooled features [clips, events, D] of the first `clips` validation
    clips of `labelled` (vidsitu:ROOT), each decoded as extract's default plan reads it (5
    events); also the data set and the clips' names."""
    ds, chosen = verb_clips(data_root(labelled, "vidsitu"), clips)
    was_training = [b.training for b in backbones]
    for b in backbones:
        b.eval()
    runs_as = [BackboneConfig(name=name, input_size=b.input_size) for b in backbones]
    per_clip = [encode_video(backbones, str(ds.video_path(c)), VIDSITU_16X4, runs_as, device)
                for c in chosen]  # each clip decoded once for all the backbones
    for b, mode in zip(backbones, was_training, strict=True):
        b.train(mode)
    return [np.stack([f[i].mean(1) for f in per_clip]) for i in range(len(backbones))], ds, chosen


def _finish(cfg: PretrainBackboneConfig, out: Path, backbone: Backbone, videos: int,
            step_s: float, wait_fraction: float, loss: float, classes: list[str],
            device: torch.device) -> None:
    from safetensors.torch import save_file

    origin: dict[str, Any] = {
        "objective": cfg.objective, "data": cfg.input, "split": cfg.split, "videos": videos,
        "steps": cfg.steps, "batch_size": cfg.batch_size, "seed": cfg.seed,
        "clip": asdict(cfg.clip), "input_size": backbone.input_size, "final_loss": loss,
        **({"flow": "opencv DIS (fast preset)", "flow_weight": cfg.flow_weight,
            "motion_width": cfg.motion_width} if cfg.objective == "modist" else {}),
        **({"classes": classes} if classes else {}),
    }
    state = {k: v.contiguous() for k, v in backbone.state_dict().items()}
    tmp = out / "backbone.safetensors.tmp"
    save_file(state, str(tmp), metadata={ARCHITECTURE_KEY: cfg.backbone.name,
                                         ORIGIN_KEY: json.dumps(origin)})
    tmp.replace(out / "backbone.safetensors")  # a complete file or none
    plot_curve(out, f"{cfg.objective} loss")
    shares = verb_shares(backbone, cfg, device) if cfg.labelled else {}
    summary = {**origin, **shares, "step_seconds": step_s,
               "data_wait_fraction": wait_fraction, "config": asdict(cfg)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"pretrain-backbone: final loss {loss:.4f} after {cfg.steps} steps "
          f"({step_s:.2f} s/step, {100 * wait_fraction:.1f}% waiting for data); "
          f"extract with --backbone.name trained/{out}")
    if "verb_share" in shares:
        print(f"pretrain-backbone: the verb's share of the features' within-clip variance "
              f"{shares['verb_share']:.3f} (untrained: "
              f"{shares['verb_share_at_start']:.3f}; a backbone about "
              "actions scores high, one about appearance near 0)")
