"""`hiermovie synth`: render the synthetic movie benchmark."""

from __future__ import annotations

import time
from dataclasses import dataclass

from hiermovie.config import opt


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
    p_context: float = opt(0.35, "VidSitu and pool clips: chance that an event is a look-alike "
                           "verb whose label only its neighbours decide")
    p_follow: float = opt(0.0, "VidSitu and pool clips: chance that a plain verb is one of "
                          "its predecessor's two successors (0 = independent events)")
    p_hidden: float = opt(0.0, "VidSitu and pool clips: chance that a plain event is hidden "
                          "(a cut-away: only its neighbours show its verb and actors)")
    p_turn: float = opt(0.0, "VidSitu and pool clips: chance that an event's agent is the "
                        "previous event's patient. The story world: --p_follow 0.8 "
                        "--p_hidden 0.3 --p_turn 0.7 (docs/synthetic-benchmark.md)")

    def __post_init__(self) -> None:
        for name in ("train", "valid", "lvu", "pool", "actions"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0")
        if self.size < 32 or self.size % 2:
            raise ValueError("size: must be an even number >= 32")
        if self.workers < 1:
            raise ValueError("workers: must be >= 1")
        for name in ("p_context", "p_follow", "p_hidden", "p_turn"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: must be in [0, 1]")


def run_synth(cfg: SynthConfig) -> int:
    """Render the synthetic benchmark (VidSitu and LVU layouts) into `cfg.out`."""
    from pathlib import Path

    from hiermovie.datasets.synth import write_actions, write_lvu, write_pool, write_vidsitu
    from hiermovie.datasets.synth_world import World

    t0 = time.time()
    world = World(p_context=cfg.p_context, p_follow=cfg.p_follow, p_hidden=cfg.p_hidden,
                  p_turn=cfg.p_turn)
    if cfg.train or cfg.valid:
        write_vidsitu(cfg.out, cfg.train, cfg.valid, seed=cfg.seed, size=cfg.size,
                      workers=cfg.workers, world=world)
    if cfg.lvu:
        write_lvu(cfg.out, cfg.lvu, seed=cfg.seed, size=cfg.size, workers=cfg.workers)
    if cfg.pool:
        write_pool(Path(cfg.out) / "pool", cfg.pool, seed=cfg.seed, size=cfg.size,
                   workers=cfg.workers, world=world)
    if cfg.actions:
        extra = max(1, cfg.actions // 10)
        write_actions(Path(cfg.out) / "actions", cfg.actions, extra, extra, seed=cfg.seed,
                      size=cfg.size, workers=cfg.workers)
    n = cfg.train + cfg.valid + cfg.lvu + cfg.pool + cfg.actions
    print(f"synth: {n} clips in {cfg.out} ({time.time() - t0:.1f} s)")
    return 0
