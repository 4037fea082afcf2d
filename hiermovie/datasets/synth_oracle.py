"""Oracle features of the synthetic world: what a backbone that sees the ground truth would store.

Each event's feature is built from its script (no rendering): fixed random unit embeddings of its
motion (what its verb looks like), agent, patient, scene and side, plus a nuisance shared by the
clip's events and noise; a hidden event (a cut-away) shows one constant panel vector and its
scene only. The motion embedding is scaled so that the verb explains a chosen share of the
within-clip variance (`hiermovie.diagnostics.verb_share`), the one property of level 1 that decides
what level 2 can add (benchmarks/level2_oracle.py maps it).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from hiermovie.datasets import synth_world as w
from hiermovie.datasets.synth import _rng
from hiermovie.diagnostics import verb_share

DIM = 64


def context_world(c: float) -> w.World:
    """The story world (c = 0) moved toward one whose context determines events (c = 1: no
    look-alike verbs, every next verb one of its predecessor's two successors, the patient
    always answers); hidden events stay at the story world's rate."""
    return replace(w.STORY, p_context=round(0.35 * (1 - c), 4), p_follow=round(0.8 + 0.2 * c, 4),
                   p_turn=round(0.7 + 0.3 * c, 4))


class Oracle:
    """Each event's feature from its ground truth: the embeddings are fixed (seed 0) for every
    cell, so cells differ only in the world and the motion's scale."""

    def __init__(self, dim: int = DIM, noise: float = 0.5) -> None:
        rng = np.random.default_rng(0)

        def unit(n: int) -> np.ndarray:
            v = rng.normal(size=(n, dim))
            return v / np.linalg.norm(v, axis=-1, keepdims=True)

        actors = [w.actor_phrase(c, s) for c in w.COLOURS for s in w.SHAPES]
        self.motion = dict(zip([*w.MOTIONS, "panel"], unit(len(w.MOTIONS) + 1), strict=True))
        self.agent = dict(zip(actors, unit(len(actors)), strict=True))
        self.patient = dict(zip(actors, unit(len(actors)), strict=True))
        self.scene = dict(zip(w.SCENES, unit(len(w.SCENES)), strict=True))
        self.side = dict(zip(("left side", "right side"), unit(2), strict=True))
        self.dim, self.noise = dim, noise

    def parts(self, events: list[w.Event], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """(motion part, the rest) of each event: [S, D] each."""
        motion = np.stack([self.motion["panel" if e.hidden else w.VERBS[e.verb]]
                           for e in events])
        rest = np.stack([self.scene[e.scene] + (0 if e.hidden else self.agent[e.agent]
                                                + self.patient[e.patient] + self.side[e.side])
                         for e in events])
        nuisance = rng.normal(size=self.dim) / math.sqrt(self.dim)
        noise = rng.normal(size=(len(events), self.dim)) * self.noise / math.sqrt(self.dim)
        return motion, rest + nuisance + noise


def scripts(seed: int, ids: range, world: w.World) -> list[list[w.Event]]:
    return [w.sample_script(_rng(seed, i), world=world) for i in ids]  # as write_vidsitu draws


def features(oracle: Oracle, clips: list[list[w.Event]], seed: int, ids: range,
             scale: float) -> np.ndarray:
    out = []
    for i, events in zip(ids, clips, strict=True):
        motion, rest = oracle.parts(events, _rng(seed, i, 7))
        out.append(scale * motion + rest)
    return np.stack(out).astype(np.float32)  # [N, 5, D]


def calibrate(oracle: Oracle, clips: list[list[w.Event]], seed: int, ids: range,
              share: float) -> float:
    """The motion scale at which the verb explains `share` of the within-clip variance."""
    verbs = np.array([[e.verb for e in s] for s in clips])
    lo, hi = 0.0, 64.0
    for _ in range(40):  # the share grows with the scale
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if verb_share(features(oracle, clips, seed, ids, mid), verbs) < share \
            else (lo, mid)
    return (lo + hi) / 2
