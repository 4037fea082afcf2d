"""The map of when mask pretraining pays: oracle features over a grid of context strength and of
the verb's share of the feature variance.

    .venv/bin/python benchmarks/level2_oracle.py --work runs/oracle            # the whole grid
    .venv/bin/python benchmarks/level2_oracle.py --work runs/oracle --contexts 1 --shares 0.5
    .venv/bin/python benchmarks/level2_oracle.py --work runs/oracle --contexts 1 --shares 0.5 \
        --ctx '{"mask_mode": "bert"}'          # an objective candidate against the default

Level 2 can only add what (a) the neighbours reveal of an event and (b) level 1's features carry
of it. Rendering and a trained backbone fix both at whatever the benchmark happens to give, so
here each event's "backbone feature" is built from the world's ground truth instead (no
rendering): fixed random unit embeddings of its motion (what the verb looks like), agent,
patient, scene and side, plus a clip nuisance shared by the clip's events and noise; a hidden
event (a cut-away) shows one constant panel vector and its scene only. The motion embedding is
scaled so that the verb explains `share` of the features' within-clip variance
(`hiermovie.diagnostics.verb_share`, the measure `pretrain-backbone` reports for real
backbones).

Context strength c in [0, 1] interpolates the script generator from the story world (c = 0:
`synth_world.STORY`) to a world whose context determines events (c = 1: no look-alike verbs,
every next verb one of the previous one's two successors, the patient always answers):
p_context = 0.35 (1 - c), p_follow = 0.8 + 0.2 c, p_turn = 0.7 + 0.3 c, p_hidden 0.3 throughout.

Per cell the project's own jobs run unchanged: `store import` (HDF5) of the labelled clips and
of an unlabelled pool, `pretrain-ctx` (mask prediction) on the pool, `probe vidsitu` (verbs and
relations) with rows backbone, random frozen, scratch, pretrained frozen and pretrained, at each
label count and probe seed. The cell's ceiling is `synth_world.neighbour_ceiling`: the best
verb accuracy from perfect perception of the event and its two neighbours. Every cell caches in
WORK/c{c}-s{share}/; a rerun resumes. Writes WORK/oracle.json, oracle.md and oracle.png.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np

from hiermovie.config import from_dict
from hiermovie.datasets import synth_world as w
from hiermovie.datasets.synth import POOL_START, clip_id, write_vidsitu
from hiermovie.datasets.synth_oracle import Oracle, calibrate, context_world, features, scripts
from hiermovie.diagnostics import verb_share
from hiermovie.feature_store.interop import import_hdf5
from hiermovie.workflows import tables
from hiermovie.workflows.pretrain_ctx import PretrainCtxConfig, run_pretrain_ctx
from hiermovie.workflows.probe.config import VidSituProbeConfig
from hiermovie.workflows.probe.vidsitu import run_vidsitu
from hiermovie.workflows.steps import Steps
from hiermovie.workflows.tables import cell

ROWS = ["backbone", "random_frozen", "scratch", "pretrained_frozen", "pretrained"]
METRICS = {"verb": "verb/Per_Ev_Top_1", "hidden": "verb/acc1_predictable",
           "relation": "relation/Macro_Top_1"}
SHAPE = {"width": 128, "ffn": 256, "heads": 4}


def import_features(url: Path, ids: list[str], x: np.ndarray) -> None:
    if (url / "import.done").exists():
        return
    h5 = url.with_suffix(".h5")
    with h5py.File(h5, "w") as f:
        for vid, feats in zip(ids, x, strict=True):
            f[vid] = feats
    import_hdf5(h5, str(url), backbone="oracle", segment_s=2.0)
    h5.unlink()
    (url / "import.done").touch()


def run_cell(work: Path, c: float, share: float, a: argparse.Namespace) -> dict:
    cdir = work / f"c{c:g}-s{share:g}"
    cdir.mkdir(parents=True, exist_ok=True)
    world, oracle = context_world(c), Oracle()
    n_train = math.ceil(max(a.labels) / 0.8) + 1  # the probe holds out 20% to select
    data = cdir / "vidsitu"
    labelled = range(n_train + a.valid)
    write_vidsitu(data, n_train, a.valid, seed=a.seed, render=False, world=world)
    lab_scripts = scripts(a.seed, labelled, world)
    pool_ids = range(POOL_START, POOL_START + a.pool)
    pool_scripts = scripts(a.seed, pool_ids, world)
    scale = calibrate(oracle, pool_scripts[:1000], a.seed, pool_ids[:1000], share)
    x_lab = features(oracle, lab_scripts, a.seed, labelled, scale)
    measured = verb_share(x_lab, np.array([[e.verb for e in s] for s in lab_scripts]))
    import_features(cdir / "labelled.zarr", [clip_id(i) for i in labelled], x_lab)
    import_features(cdir / "pool.zarr", [f"pool{i - POOL_START:06d}" for i in pool_ids],
                    features(oracle, pool_scripts, a.seed, pool_ids, scale))
    step = Steps()
    extra, tag = candidate(a)
    rows = ["pretrained_frozen", "pretrained"] if extra else ROWS
    ctx = cdir / f"ctx{tag}"
    step("pretrain_ctx", ctx / "summary.json", run_pretrain_ctx, from_dict(PretrainCtxConfig, {
        "store": [str(cdir / "pool.zarr")], "out": str(ctx), "steps": a.ctx_steps,
        "val_every": 500, "resume": True, "progress": False,
        "model": SHAPE, **MAP_OBJECTIVE, **extra}))
    probe = cdir / f"probe{tag}"
    step("probe", probe / "results.json", run_vidsitu, from_dict(VidSituProbeConfig, {
        "data": f"vidsitu:{data}", "store": str(cdir / "labelled.zarr"), "rows": rows,
        "contextualizer": str(ctx / "contextualizer"), "tasks": ["verb", "relation"],
        "train_clips": a.labels, "seeds": a.seeds, "out": str(probe), "progress": False}))
    seconds = step.seconds  # of the steps this run ran (a cached step took none)
    res = json.loads((probe / "results.json").read_text())
    values = {(x["labels"], x["row"], x["metric"]): x["values"] for x in res["cells"]}
    cellres = {"context": c, "share": share, "share_measured": measured, "scale": scale,
               "world": asdict(world), "ceiling": w.neighbour_ceiling(world),
               "seconds": seconds, "rows": {}}
    for n in a.labels:
        cellres["rows"][str(n)] = {r: {m: values[(n, r, key)] for m, key in METRICS.items()}
                                   for r in rows}
    return cellres


# the objective every map cell was measured with (pretrain-ctx's default until the objective
# audit made infonce_clip the default); candidates change it by their options
MAP_OBJECTIVE = {"loss": "l2"}


def candidate(a: argparse.Namespace) -> tuple[dict, str]:
    """An objective candidate's pretrain-ctx options (`--ctx`) and the tag of its folders."""
    extra = json.loads(a.ctx) if a.ctx else {}
    return extra, "".join(f"-{k}={v}" for k, v in sorted(extra.items()))


def report_candidate(work: Path, cells: list[dict], a: argparse.Namespace) -> None:
    """The candidate's pretrained rows against the default objective's, cell by cell."""
    _, tag = candidate(a)
    lines = [f"# Objective candidate {a.ctx} against the default (mask token, per-segment "
             "targets, decay on all)", "", "Gain in points, candidate - default (2 x the larger "
             "std in brackets).", "",
             "| context | verb share | labels | row | verb | hidden | relation |",
             "|---|---|---|---|---|---|---|"]
    for x in cells:
        base = json.loads((work / f"c{x['context']:g}-s{x['share']:g}" / "probe" /
                           "results.json").read_text())
        values = {(c["labels"], c["row"], c["metric"]): c["values"] for c in base["cells"]}
        for n in a.labels:
            for r in ("pretrained_frozen", "pretrained"):
                both = {"rows": {str(n): {"cand": x["rows"][str(n)][r], "base": {
                    m: values[(n, r, key)] for m, key in METRICS.items()}}}}
                lines.append(f"| {x['context']:g} | {x['share']:g} | {n} | {r} | " + " | ".join(
                    "{:+.1f} ({:.1f})".format(*gain(both, n, "cand", "base", m))
                    for m in METRICS) + " |")
    (work / f"oracle{tag}.md").write_text("\n".join(lines) + "\n")
    (work / f"oracle{tag}.json").write_text(json.dumps({"args": vars(a), "cells": cells},
                                                       indent=1))


def gain(cell_: dict, n: int, row: str, base: str, metric: str) -> tuple[float, float]:
    """Mean gain in points, and 2 x the larger std of the two rows (the bar for a real gain)."""
    return tables.gain(*(cell_["rows"][str(n)][r][metric] for r in (row, base)))


def report(work: Path, cells: list[dict], a: argparse.Namespace) -> None:
    (work / "oracle.json").write_text(json.dumps({"args": vars(a), "cells": cells}, indent=1))
    head = ["context", "verb share (measured)", "ceiling hidden: own / +neighbours", "labels",
            *(f"{r} verb / hidden / relation" for r in ROWS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for x in cells:
        ce = x["ceiling"]
        for n in a.labels:
            rows = x["rows"][str(n)]
            lines.append("| " + " | ".join([
                f"{x['context']:g}", f"{x['share']:g} ({x['share_measured']:.3f})",
                f"{100 * ce['own']['predictable']:.0f} / "
                f"{100 * ce['with_neighbours']['predictable']:.0f}", str(n),
                *(" / ".join(cell(rows[r][m]) for m in METRICS) for r in ROWS)]) + " |")
    gains = ["| context | verb share | labels | pretrained - scratch: verb / hidden / relation | "
             "pretrained - backbone: verb / hidden / relation | pretrained frozen - random "
             "frozen: hidden |", "|---|---|---|---|---|---|"]
    def g(x: dict, n: int, row: str, base: str, metrics: list[str]) -> str:
        return " / ".join("{:+.1f} ({:.1f})".format(*gain(x, n, row, base, m)) for m in metrics)

    for x in cells:
        for n in a.labels:
            gains.append(f"| {x['context']:g} | {x['share']:g} | {n} | "
                         f"{g(x, n, 'pretrained', 'scratch', list(METRICS))} | "
                         f"{g(x, n, 'pretrained', 'backbone', list(METRICS))} | "
                         f"{g(x, n, 'pretrained_frozen', 'random_frozen', ['hidden'])} |")
    (work / "oracle.md").write_text(
        f"# Level 2 on oracle features: pool {a.pool}, labels {a.labels}, {a.seeds} probe seeds"
        f"\n\nVerb Acc@1 / hidden-event verb Acc@1 / relation mean accuracy, mean +- std over "
        f"seeds.\n\n" + "\n".join(lines) + "\n\nGains in points (2 x the larger std in "
        "brackets: a gain above it is the criterion for real).\n\n" + "\n".join(gains) + "\n")
    heatmap(work / "oracle.png", cells, a)


def heatmap(path: Path, cells: list[dict], a: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    contexts = sorted({x["context"] for x in cells})
    shares = sorted({x["share"] for x in cells})
    panels = [("pretrained", "scratch", "hidden"), ("pretrained", "scratch", "verb"),
              ("pretrained", "backbone", "verb"), ("pretrained_frozen", "random_frozen",
                                                    "hidden")]
    fig, axes = plt.subplots(len(a.labels), len(panels), figsize=(4.2 * len(panels),
                                                                  3.4 * len(a.labels)),
                             squeeze=False)
    for i, n in enumerate(a.labels):
        for j, (row, base, m) in enumerate(panels):
            grid = np.full((len(shares), len(contexts)), np.nan)
            for x in cells:
                grid[shares.index(x["share"]), contexts.index(x["context"])] = gain(
                    x, n, row, base, m)[0]
            ax = axes[i, j]
            lim = max(1.0, float(np.nanmax(np.abs(grid))))
            im = ax.imshow(grid, origin="lower", cmap="RdBu", vmin=-lim, vmax=lim,
                           aspect="auto")
            for (r, k), v in np.ndenumerate(grid):
                ax.text(k, r, "" if np.isnan(v) else f"{v:+.1f}", ha="center", va="center",
                        fontsize=9)
            ax.set_xticks(range(len(contexts)), [f"{c:g}" for c in contexts])
            ax.set_yticks(range(len(shares)), [f"{s:g}" for s in shares])
            ax.set_xlabel("context strength (0 = story world, 1 = determined)")
            ax.set_ylabel("verb share of feature variance")
            ax.set_title(f"{row} - {base}: {m} verbs" if m != "relation" else
                         f"{row} - {base}: relations", fontsize=9)
            ax.text(0.01, 1.10, f"{n} labels", transform=ax.transAxes, fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.046, label="points")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--seed", type=int, default=0, help="the world's seed")
    ap.add_argument("--contexts", default="0,0.5,0.75,1", help="context strengths")
    ap.add_argument("--shares", default="0.04,0.15,0.5", help="the verb's variance shares")
    ap.add_argument("--labels", default="60,300", help="labelled clip counts")
    ap.add_argument("--seeds", type=int, default=3, help="probe seeds")
    ap.add_argument("--pool", type=int, default=4000, help="unlabelled clips")
    ap.add_argument("--valid", type=int, default=300, help="validation clips")
    ap.add_argument("--ctx_steps", type=int, default=2000, help="pretrain-ctx steps (its default)")
    ap.add_argument("--ctx", default="", help="an objective candidate: pretrain-ctx options as "
                    "JSON; probes its pretrained rows only, against the grid's default run")
    a = ap.parse_args()
    a.labels = sorted(int(n) for n in a.labels.split(","))
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    cells = []
    for share in (float(s) for s in a.shares.split(",")):
        for c in (float(c) for c in a.contexts.split(",")):
            t = time.time()
            cells.append(run_cell(work, c, share, a))
            print(f"== context {c:g}, share {share:g}: {time.time() - t:.0f} s", flush=True)
            (report_candidate if a.ctx else report)(work, cells, a)
    print((work / f"oracle{candidate(a)[1]}.md").read_text())


if __name__ == "__main__":
    main()
