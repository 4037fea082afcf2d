"""Named settings the demo and the benchmarks share: the synthetic worlds, level 1's recipe and
corpus, the demo's contextualizer shape. One place, so a benchmark measures what the demo runs."""

from __future__ import annotations

# the synthetic worlds (docs/synthetic-benchmark.md) as SynthConfig / World fields
WORLDS = {"story": {"p_context": 0.35, "p_follow": 0.8, "p_hidden": 0.3, "p_turn": 0.7},
          "determined": {"p_context": 0.0, "p_follow": 1.0, "p_hidden": 0.3, "p_turn": 1.0}}

# what pretrain-backbone needs on the synthetic world (docs/backbone-pretraining.md): the movie
# pool's recipe of rounds 1-2 (benchmarks/level1_share.py): local positives, a video's other
# moments and a still copy as negatives, no colour augmentation, 800 steps
BACKBONE_RECIPE = {
    "backbone": {"input_size": 64}, "batch_size": 32, "lr": 1e-3, "steps": 800,
    "clip": {"max_gap_s": 0.3, "per_video": 4, "static_negative": True, "min_crop_area": 0.8,
             "jitter": 0.0, "grayscale": 0.0, "blur": 0.0},
}

# the demo's contextualizer (and benchmarks/level2.py's)
CTX_SHAPE = {"width": 256, "ffn": 512, "heads": 4}

# level 1 the paper's way (round 3, benchmarks/level1_share.py): trained on its own corpus of
# trimmed actions (`synth --actions`, the role Kinetics-400 plays), sampled as CVRL samples
# Kinetics: one sample per clip, positives anywhere in it
ACTION_CLIPS = 4000
ACTIONS_RECIPE = {**BACKBONE_RECIPE, "clip": {**BACKBONE_RECIPE["clip"], "per_video": 1,
                                              "max_gap_s": 0.0, "static_negative": False}}
# the chosen level 1 (BENCHMARKS.md, round 3), the corpus seed its zoo weights were trained on,
# and their name in the zoo
LEVEL1_RECIPE = {**ACTIONS_RECIPE, "objective": "modist"}
LEVEL1_SEED = 2
LEVEL1_ZOO = "zoo/tiny3d-modist-actions"
