"""`hiermovie demo`: the whole chain on this machine, on the synthetic benchmark."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hiermovie.config import from_dict, opt
from hiermovie.workflows.presets import (
    ACTION_CLIPS,
    CTX_SHAPE,
    LEVEL1_RECIPE,
    LEVEL1_SEED,
    LEVEL1_ZOO,
    WORLDS,
)
from hiermovie.workflows.steps import Steps
from hiermovie.workflows.tables import number


@dataclass
class DemoConfig:
    workdir: str = opt("runs/demo", "where the benchmark, store, models and reports go")
    world: Literal["determined", "story"] = opt(
        "determined", "the synthetic world: determined (neighbouring events fix each other, "
        "as scripts do: where BENCHMARKS.md's oracle map shows level 2 can pay) or story (the "
        "level-2 benchmark's world)")
    train: int = opt(120, "synthetic training clips")
    valid: int = opt(60, "synthetic validation clips")
    size: int = opt(64, "rendered frame size and the backbone's input size in pixels")
    pool: int = opt(1200, "unlabelled clips of the same world, the contextualizer's "
                    "pretraining data (the role MovieClips plays in the paper; 0 = pretrain on "
                    "the labelled training clips instead)")
    backbone: str = opt(LEVEL1_ZOO, "level 1: the shipped weights, learned without labels on "
                        "the action corpus (hiermovie/zoo/README.md); or any backbone name, "
                        "e.g. tiny3d (random weights unless a path is given)")
    weights: str = opt("", "backbone weights")
    ctx_steps: int = opt(800, "contextualizer pretraining steps")
    seeds: int = opt(3, "probe seeds")
    pretrain_backbone: bool = opt(False, "also train level 1 here, as the shipped weights "
                                  "were made: render the action corpus (synth --actions) and "
                                  "run pretrain-backbone on it, then compare both level 1s, "
                                  "each with and without the contextualizer")
    backbone_steps: int = opt(LEVEL1_RECIPE["steps"], "backbone pretraining steps (with "
                              "pretrain_backbone)")

    def __post_init__(self) -> None:
        if self.train < 10 or self.valid < 5:
            raise ValueError("train/valid: need at least 10 training and 5 validation clips")


def run_demo(cfg: DemoConfig) -> int:
    """Synthetic benchmark -> [pretrain-backbone] -> extract -> pretrain-ctx -> probe."""
    demo = Demo(cfg)
    demo.render()
    how = ("given weights" if cfg.weights else "shipped weights" if cfg.backbone == LEVEL1_ZOO
           else "random init")
    runs = {f"{cfg.backbone} ({how})": demo.level2(cfg.backbone, cfg.weights, demo.work)}
    if cfg.pretrain_backbone:
        runs[f"{cfg.backbone} (pretrain-backbone)"] = demo.level2(
            demo.pretrain_backbone(), "", demo.work / "trained")
    demo.report(runs)
    return 0


class Demo:
    """The demo's steps, each a job run in-process, timed, ending the demo if it fails."""

    def __init__(self, cfg: DemoConfig) -> None:
        self.cfg, self.work = cfg, Path(cfg.workdir)
        self.data = self.work / "synth"
        self.steps = Steps()
        self.timings = self.steps.seconds

    def step(self, name: str, fn: Any, job_cfg: Any) -> None:
        self.steps(name, None, fn, job_cfg)

    def render(self) -> None:
        from hiermovie.datasets.synth_world import World
        from hiermovie.workflows.synth import SynthConfig, run_synth

        cfg, data, world = self.cfg, self.data, World(**WORLDS[self.cfg.world])
        if not (data / "vidsitu_annotations" / "vinfo_files" / "vinfo_valid_lb.json").exists():
            self.step("synth", run_synth, SynthConfig(
                out=str(data), train=cfg.train, valid=cfg.valid, size=cfg.size, world=world))
        if cfg.pool and not (data / "pool" / f"pool{cfg.pool - 1:06d}.mp4").exists():
            self.step("synth (pool)", run_synth, SynthConfig(
                out=str(data), train=0, valid=0, pool=cfg.pool, size=cfg.size, world=world))

    def pretrain_backbone(self) -> str:
        """Level 1 trained without labels on its own corpus of trimmed actions, as the zoo's
        weights were (hiermovie/zoo/README.md); its backbone's name."""
        from hiermovie.datasets.synth import write_actions
        from hiermovie.workflows.pretrain_backbone import (
            PretrainBackboneConfig,
            run_pretrain_backbone,
        )
        from hiermovie.workflows.progress import progress

        bb, cfg, actions = self.work / "backbone", self.cfg, self.work / "actions"
        def render(n: int) -> None:
            with progress(total=0, desc="synth (actions)", unit="clip") as bar:
                write_actions(actions, n, 0, seed=LEVEL1_SEED, size=cfg.size, bar=bar)

        self.step("synth (actions)", render, ACTION_CLIPS)
        self.step("pretrain-backbone", run_pretrain_backbone, from_dict(PretrainBackboneConfig, {
            **LEVEL1_RECIPE, "input": f"kinetics:{actions}", "out": str(bb),
            "steps": cfg.backbone_steps, "resume": True, "labelled": f"vidsitu:{self.data}"}))
        return f"trained/{bb}"

    def level2(self, backbone: str, weights: str, sub: Path) -> dict:
        """extract -> pretrain-ctx -> probe for one backbone; returns the probe's results."""
        from hiermovie.workflows.extract import ExtractConfig, run_extract
        from hiermovie.workflows.pretrain_ctx import PretrainCtxConfig, run_pretrain_ctx
        from hiermovie.workflows.probe.config import VidSituProbeConfig
        from hiermovie.workflows.probe.vidsitu import run_vidsitu

        cfg, data = self.cfg, self.data
        store, pool = str(sub / "features.zarr"), str(sub / "pool.zarr")
        sources = [(f"vidsitu:{data}", store)] + ([(str(data / "pool"), pool)] if cfg.pool else [])
        for src, dst in sources:
            self.step("extract", run_extract, from_dict(ExtractConfig, {
                "input": src, "store": dst, "backbone": {
                    "name": backbone, "weights": weights,
                    **({} if backbone.startswith(("trained/", "zoo/"))
                       else {"input_size": cfg.size})}}))
        labelled = {"store": [store], "data": f"vidsitu:{data}", "videos": "split:train"}
        for name, objective, src in (("ctx", "mask", {"store": [pool]} if cfg.pool else labelled),
                                     ("ctx-control", "supervised", labelled)):
            self.step(f"pretrain-ctx ({objective})", run_pretrain_ctx, from_dict(
                PretrainCtxConfig, {
                    **src, "objective": objective, "out": str(sub / name),
                    "steps": cfg.ctx_steps, "lr": 5e-4, "warmup": 50, "val_every": 250,
                    "resume": True, "model": CTX_SHAPE}))
        self.step("probe", run_vidsitu, from_dict(VidSituProbeConfig, {
            "data": f"vidsitu:{data}", "store": store, "seeds": cfg.seeds,
            "contextualizer": str(sub / "ctx" / "contextualizer"),
            "positive_control": str(sub / "ctx-control" / "contextualizer"),
            "out": str(sub / "probe")}))
        return {"results": json.loads((sub / "probe" / "results.json").read_text()),
                "ctx": json.loads((sub / "ctx" / "summary.json").read_text()),
                "verb_share": level1_verb_share(store, data)}

    def report(self, runs: dict[str, dict]) -> None:
        """demo.md (every metric, the timings) and the terminal's short table and verdict."""
        verdict = "".join(
            f"Level 1 ({name}): the verb is {r['verb_share']:.0%} of its features' within-clip "
            f"variance. {judge(r['results'])}\n" for name, r in runs.items()) + (
            "The oracle map (BENCHMARKS.md) shows mask pretraining paying when neighbouring "
            "events determine each other and level 1 carries the action; read the "
            "mask-pretrained rows against that share.\n")
        report = (f"# hiermovie demo\n\n{table(runs, self.cfg.pool)}\n{verdict}\n" + "".join(
            f"Contextualizer on {name}: mask-prediction loss on held-out pretraining clips "
            f"{r['ctx']['val_loss']:.4f}, {r['ctx']['ratio_to_mean_feature']:.3f}x predicting "
            f"the mean feature; clip share of its outputs' variance "
            f"{number(r['ctx']['clip_share_contextualizer'])} (backbone features "
            f"{number(r['ctx']['clip_share_backbone'])}){identity(r['ctx'])}.\n"
            for name, r in runs.items()) +
            f"\nTimings (s): {json.dumps(self.timings)}; total "
            f"{sum(self.timings.values()):.0f} s.\n")
        (self.work / "demo.md").write_text(report)
        print(f"\n{terminal_table(runs)}\n\n{verdict}\nEvery metric with its spread over "
              f"seeds, and the timings: {self.work / 'demo.md'}")


# the seed's table: level 1 alone, + a contextualizer (scratch, mask-pretrained); controls after
SHORT = {"backbone": "level 1 alone", "scratch": "+ context, from scratch",
         "pretrained_frozen": "+ mask-pretrained, frozen",
         "pretrained": "+ mask-pretrained, tuned", "random_frozen": "control: random, frozen",
         "random_selfonly": "control: random, self-only",
         "positive_control": "control: label-trained"}
TERMINAL = {"verb/Per_Ev_Top_1": "Acc@1", "verb/Per_Ev_Top_5": "Acc@5",
            "verb/recall_macro_1_th_9": "Rec@5", "verb/acc1_predictable": "hidden",
            "relation/Macro_Top_1": "Rel", "roles/cider": "CIDEr", "roles/lea": "LEA"}
ACC1, HIDDEN = "verb/Per_Ev_Top_1", "verb/acc1_predictable"


def level1_verb_share(store: str, data: Path) -> float:
    """The verb's share of the stored features' within-clip variance (validation clips)."""
    import numpy as np

    from hiermovie.datasets.vidsitu import VidSitu
    from hiermovie.diagnostics import verb_share
    from hiermovie.feature_store import FeatureStore

    fs, valid = FeatureStore(store), VidSitu(data, "valid")
    clips = [c for c in valid.clips if c in fs]
    x = np.stack([fs.get(c).astype(np.float32).mean(1) for c in clips])
    return verb_share(x, np.array([valid.majority_verbs(c) for c in clips]))


def terminal_table(runs: dict[str, dict]) -> str:
    """The leaderboard's headline columns, means over seeds, in the seed's row order: fits 80
    columns. The label-trained control is shown only if it passes (`control_fails`)."""
    from hiermovie.workflows.probe.report import by_row

    lines = []
    for name, r in runs.items():
        top = max(c["labels"] for c in r["results"]["cells"])
        rows = by_row(r["results"]["cells"], top)
        lines.append(f"Level 1: {name}")
        lines.append(f"{str(top) + ' labels, x100':27s}" + "".join(
            f"{t:>7s}" for t in TERMINAL.values()))
        failed = control_fails(rows)
        for row in [k for k in SHORT if k in rows and not (k == "positive_control" and failed)]:
            m = rows[row]
            lines.append(f"{SHORT[row]:27s}" + "".join(
                f"{100 * mean(m[k]):7.1f}" if k in m else f"{'-':>7s}" for k in TERMINAL))
        if failed:
            lines += textwrap.wrap(f"(control: label-trained left out: {failed})", 80)
    return "\n".join(lines)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def control_fails(rows: dict[str, dict[str, list[float]]]) -> str:
    """Why the label-trained control does not pass ("" if it does): trained with the very
    labels the heads read, it must beat a random contextualizer on verbs."""
    if "positive_control" not in rows or "random_frozen" not in rows:
        return ""
    got, floor = (100 * mean(rows[r][ACC1]) for r in ("positive_control", "random_frozen"))
    return "" if got > floor else (f"verb Acc@1 {got:.1f}, not above random frozen's "
                                   f"{floor:.1f}: at this label count the probe cannot use "
                                   "what it was trained with (demo.md has its row)")


def judge(results: dict) -> str:
    """The verdict in words: the mask-pretrained, fine-tuned row against level 1 alone and
    against a contextualizer trained from scratch, on all verbs and hidden events (a
    difference counts beyond 2 x the larger std over seeds)."""
    from hiermovie.workflows import tables
    from hiermovie.workflows.probe.report import by_row

    top = max(c["labels"] for c in results["cells"])
    rows = by_row(results["cells"], top)
    if "pretrained" not in rows:
        return ""
    said = []
    for base, name in (("backbone", "level 1 alone"),
                       ("scratch", "a contextualizer trained from scratch")):
        parts = []
        for metric, what in ((ACC1, "verbs"), (HIDDEN, "hidden-event verbs")):
            if metric not in rows[base] or metric not in rows["pretrained"]:
                continue
            gain, bar = tables.gain(rows["pretrained"][metric], rows[base][metric])
            word = "above" if gain > bar else "below" if gain < -bar else "level with"
            parts.append(f"{word} it on {what} ({gain:+.1f} points, 2 std {bar:.1f})")
        said.append(f"against {name}, " + " and ".join(parts))
    return "The mask-pretrained contextualizer, fine-tuned: " + "; ".join(said) + "."


def identity(summary: dict) -> str:
    if summary.get("identity_readout") is None:  # too few held-out clips to fit the read-out
        return ""
    return (f"; a linear read-out finds each segment's own feature in its output for "
            f"{summary['identity_readout']:.0%} of the segments (chance "
            f"{summary['identity_chance']:.0%})")


def table(runs: dict[str, dict], pool: int) -> str:
    """One Markdown table: a row per (backbone, probe row), mean +- std over seeds."""
    from hiermovie.workflows.probe.report import by_row, metric_table
    from hiermovie.workflows.probe.rows import ROWS
    from hiermovie.workflows.tables import spread

    first = next(iter(runs.values()))["results"]
    top = max(c["labels"] for c in first["cells"])
    merged, names = {}, {}
    for name, r in runs.items():
        for row, metrics in by_row(r["results"]["cells"], top).items():
            merged[f"{name}/{row}"] = metrics
            names[f"{name}/{row}"] = [name, ROWS[row][0]]
    return (f"Synthetic VidSitu validation clips ({first['coverage']['valid']['available']}); "
            f"heads trained on {top} labelled training clips; the mask-prediction "
            f"contextualizer pretrained on "
            + (f"{pool} unlabelled clips of the same world (the paper's regime: "
               "MovieClips)" if pool else "the labelled training clips")
            + ", the positive control on the training clips' labels (never the validation "
            f"clips); "
            f"{spread(first['config']['seeds'])}.\n\n"
            + metric_table(merged, ["Backbone", "Row"], names) + "\n")
