"""`hiermovie synth`: render the synthetic movie benchmark."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from hiermovie.config import opt
from hiermovie.datasets.synth_world import World
from hiermovie.workflows.progress import progress


@dataclass
class SynthConfig:
    out: str = opt("runs/synth", "output folder (VidSitu and LVU layouts side by side)")
    train: int = opt(240, "VidSitu-style training clips (10 s each)")
    valid: int = opt(80, "VidSitu-style validation clips")
    lvu: int = opt(0, "LVU-style long clips (30-90 s each)")
    pool: int = opt(0, "unlabelled clips of the same world in OUT/pool, no annotations (the "
                    "role MovieClips plays in the paper: data for pretrain-ctx)")
    actions: int = opt(0, "trimmed action clips (2-4 s, one motion each, no story) in OUT/actions "
                       "in Kinetics' layout, the role Kinetics-400 plays for level 1 "
                       "(pretrain-backbone --input kinetics:OUT/actions); plus a tenth as many "
                       "validation and test clips")
    size: int = opt(112, "frame size in pixels")
    seed: int = opt(0, "seed: the same seed renders the same benchmark")
    workers: int = opt(2, "rendering processes")
    world: World = opt(default_factory=World)  # the VidSitu and pool clips' world

    # the world's fields before they were nested under `world` (kept for this release)
    ALIASES: ClassVar[dict[str, str]] = {p: f"world.{p}" for p in (
        "p_context", "p_follow", "p_hidden", "p_turn")}

    def __post_init__(self) -> None:
        for name in ("train", "valid", "lvu", "pool", "actions"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0")
        if self.size < 32 or self.size % 2:
            raise ValueError("size: must be an even number >= 32")
        if self.workers < 1:
            raise ValueError("workers: must be >= 1")


def run_synth(cfg: SynthConfig) -> int:
    """Render the synthetic benchmark (VidSitu and LVU layouts) into `cfg.out`."""
    from pathlib import Path

    from hiermovie.datasets.synth import write_actions, write_lvu, write_pool, write_vidsitu

    t0 = time.time()
    world = cfg.world
    # each part adds its clips to the bar; shown after a second, so that a refusal (a bad
    # --out) stays one line
    with progress(total=0, desc="synth", unit="clip", delay=1.0) as bar:
        if cfg.train or cfg.valid:
            write_vidsitu(cfg.out, cfg.train, cfg.valid, seed=cfg.seed, size=cfg.size,
                          workers=cfg.workers, world=world, bar=bar)
        if cfg.lvu:
            write_lvu(cfg.out, cfg.lvu, seed=cfg.seed, size=cfg.size, workers=cfg.workers,
                      bar=bar)
        if cfg.pool:
            write_pool(Path(cfg.out) / "pool", cfg.pool, seed=cfg.seed, size=cfg.size,
                       workers=cfg.workers, world=world, bar=bar)
        if cfg.actions:
            extra = max(1, cfg.actions // 10)
            write_actions(Path(cfg.out) / "actions", cfg.actions, extra, extra, seed=cfg.seed,
                          size=cfg.size, workers=cfg.workers, bar=bar)
    n = cfg.train + cfg.valid + cfg.lvu + cfg.pool + cfg.actions
    print(f"synth: {n} clips in {cfg.out} ({time.time() - t0:.1f} s)")
    return 0
