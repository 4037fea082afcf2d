"""Level 2 end to end, in the paper's regime: does a contextualizer pretrained by mask prediction
on unlabelled movie video beat backbone features alone, a random one and one trained from
scratch with the heads?

    .venv/bin/python benchmarks/level2.py --work DIR --seed S --pool N --labels 30,60,240 --seeds 3
    .venv/bin/python benchmarks/level2.py --work DIR \
        --world '{"p_context": 0, "p_follow": 1, "p_turn": 1}'

The story world (docs/synthetic-benchmark.md; fixed before any objective was measured on it), or
with `--world` the story world with those parameters changed (e.g. the determined world of
benchmarks/level2_oracle.py), world seed S: an unlabelled pool of N clips (the MovieClips role)
and a labelled VidSitu-layout set, and level 1's own corpus of trimmed actions (`--actions`
clips in Kinetics' layout, the Kinetics-400 role). pretrain-backbone trains tiny3d on the action
corpus twice: the chosen self-supervised level 1 (`presets.LEVEL1_RECIPE`, no labels; its
summary gives the verb's share of the features, before and after) and the supervised one (the
corpus' motion labels: the paper's "Supervised Training (K400)" row, probed on its own as
`supervised_backbone`); extract writes the pool's and the labelled clips' features with them;
pretrain-ctx trains the mask-prediction contextualizer on the pool store only and the positive
control (`--objective supervised`) on labelled training clips of its own (as many as the
labelled set's, another seed of the same world: never the clips the probe trains on); probe
vidsitu evaluates every row at each label count. Every step caches its output in DIR, so a rerun
resumes and a second world reuses nothing by accident (all paths are in DIR).

Objective candidates (`--ctx '{"visible_weight": 1}'`, and `--rows` to probe fewer rows)
reuse the world, the backbone and the stores and write DIR/level2-<options>.json etc.

Writes DIR/level2.json ({"rows": [{"labels", "row", "metric", "values"}], "ceiling",
"collapse", "seconds"}), DIR/level2.md (tables) and DIR/level2.png (metric vs labels).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

from hiermovie.config import from_dict
from hiermovie.datasets import synth_world as w
from hiermovie.datasets.synth import write_actions, write_pool, write_vidsitu
from hiermovie.workflows.extract import ExtractConfig, run_extract
from hiermovie.workflows.presets import ACTION_CLIPS, ACTIONS_RECIPE, CTX_SHAPE, LEVEL1_RECIPE
from hiermovie.workflows.pretrain_backbone import PretrainBackboneConfig, run_pretrain_backbone
from hiermovie.workflows.pretrain_ctx import PretrainCtxConfig, run_pretrain_ctx
from hiermovie.workflows.probe import report
from hiermovie.workflows.probe.config import VidSituProbeConfig
from hiermovie.workflows.probe.rows import ROWS as TITLES
from hiermovie.workflows.probe.vidsitu import run_vidsitu
from hiermovie.workflows.steps import Steps
from hiermovie.workflows.tables import cell, number

SUPERVISED = ("Supervised level 1 (action labels), backbone features alone",)
ROWS = ["backbone", "random_frozen", "random_selfonly", "scratch", "pretrained_frozen",
        "pretrained", "positive_control"]
METRICS = {"verb_acc1": "verb/Per_Ev_Top_1", "verb_acc1_predictable": "verb/acc1_predictable",
           "verb_acc1_label_only": "verb/acc1_label_only",
           "relation_mean_acc": "relation/Macro_Top_1", "cider": "roles/cider"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--seed", type=int, default=0, help="the world's seed")
    ap.add_argument("--pool", type=int, default=20_000, help="unlabelled clips")
    ap.add_argument("--labels", default="30,60,240,1500", help="labelled clip counts")
    ap.add_argument("--seeds", type=int, default=3, help="probe seeds")
    ap.add_argument("--valid", type=int, default=300, help="validation clips")
    ap.add_argument("--size", type=int, default=64, help="rendered frame size (the backbone "
                    "reads 64 px)")
    ap.add_argument("--actions", type=int, default=ACTION_CLIPS, help="level 1's corpus: "
                    "trimmed action clips")
    ap.add_argument("--backbone_steps", type=int, default=LEVEL1_RECIPE["steps"])
    ap.add_argument("--ctx_steps", type=int, default=1500)
    ap.add_argument("--ctx", default="{}", help="an objective candidate: pretrain-ctx options "
                    "as JSON, e.g. '{\"visible_weight\": 1}' (its outputs get a name suffix; "
                    "the world, backbone and stores are shared)")
    ap.add_argument("--probe", default="{}", help="probe vidsitu options as JSON, e.g. "
                    "'{\"finetune\": {\"readout\": \"infill\"}}'")
    ap.add_argument("--rows", default=",".join(ROWS), help="probe rows")
    ap.add_argument("--world", default="{}", help="the world: the story world's parameters "
                    "changed as JSON, e.g. '{\"p_context\": 0, \"p_follow\": 1, \"p_turn\": 1}'")
    a = ap.parse_args()
    variant, probe_opts = json.loads(a.ctx), json.loads(a.probe)
    tag = "".join(f"-{k}={v}" for k, v in sorted(variant.items()))
    probe_tag = "".join(f"-{k}={json.dumps(v, sort_keys=True)}".replace('"', "").replace(
        " ", "") for k, v in sorted(probe_opts.items()))
    work = Path(a.work)
    labels = sorted(int(n) for n in a.labels.split(","))
    select = VidSituProbeConfig().select_fraction
    train = math.ceil(max(labels) / (1 - select)) + 1  # the probe holds out selection clips
    data, pool = work / "synth", work / "synth" / "pool"
    step = Steps()
    seconds = step.seconds

    world = replace(w.STORY, **json.loads(a.world))
    # a render's marker is written when it ends (its annotations come first: an interrupted
    # render had looked done); a rerun renders only the clips not on disk
    step("render labelled clips", data / "render.done", lambda: write_vidsitu(
        data, train, a.valid, seed=a.seed, size=a.size, world=world)
        or (data / "render.done").touch())
    step("render pool", pool / "render.done", lambda: write_pool(
        pool, a.pool, seed=a.seed, size=a.size, world=world) or (pool / "render.done").touch())
    # the positive control learns from labelled clips of its own, never the probe's: trained
    # on the probe's clips it had memorised their labels, and heads trusting it generalised
    # worse than backbone features alone (first run, BENCHMARKS.md)
    control = work / "control-synth"
    step("render the control's labelled clips", control / "render.done", lambda: write_vidsitu(
        control, train, 5, seed=a.seed + 10_000, size=a.size, world=world)
        or (control / "render.done").touch())
    actions = work / "actions"
    step("render the action corpus", actions / "render.done", lambda: write_actions(
        actions, a.actions, 0, seed=a.seed, size=a.size) or (actions / "render.done").touch())
    bb, sup = work / "backbone", work / "backbone-supervised"
    for out, recipe in ((bb, LEVEL1_RECIPE), (sup, {**ACTIONS_RECIPE, "objective": "supervised"})):
        step(f"pretrain-backbone ({recipe.get('objective', 'cvrl')}, actions)",
             out / "backbone.safetensors", run_pretrain_backbone, from_dict(
                 PretrainBackboneConfig, {**recipe, "input": f"kinetics:{actions}",
                                          "out": str(out), "steps": a.backbone_steps,
                                          "resume": True, "labelled": f"vidsitu:{data}"}))
    stores = {"labelled": (f"vidsitu:{data}", work / "labelled.zarr", bb),
              "pool": (str(pool), work / "pool.zarr", bb),
              "control": (f"vidsitu:{control}", work / "control.zarr", bb),
              "labelled, supervised level 1": (f"vidsitu:{data}",
                                               work / "labelled-supervised.zarr", sup)}
    for name, (src, store, level1) in stores.items():
        step(f"extract ({name})", store / "extract.done", lambda s=src, st=store, b=level1: (
            run_extract(from_dict(ExtractConfig, {
                "input": s, "store": str(st), "backbone": {"name": f"trained/{b}"}}))
            or (st / "extract.done").touch()))
    ctx = {"mask": (work / f"ctx-pool{tag}", {"store": [str(work / "pool.zarr")], **variant}),
           # the control keeps its best validated model: trained to the end it memorises the
           # few labelled clips (first run: validation loss 5.97 vs 4.08 untrained)
           "supervised": (work / "ctx-control-own", {
               "store": [str(work / "control.zarr")], "data": f"vidsitu:{control}",
               "videos": "split:train", "keep": "best"})}
    for objective, (out, src) in ctx.items():
        step(f"pretrain-ctx ({objective})", out / "summary.json", run_pretrain_ctx,
             from_dict(PretrainCtxConfig, {
                 **src, "objective": objective, "out": str(out), "steps": a.ctx_steps,
                 "lr": 5e-4, "warmup": 50, "val_every": 250, "resume": True, "model": CTX_SHAPE}))
    rows = a.rows.split(",")
    probe = work / f"probe{tag}{probe_tag}{'' if rows == ROWS else '-rows=' + a.rows}"
    step("probe", probe / "results.json", run_vidsitu, from_dict(VidSituProbeConfig, {
        "data": f"vidsitu:{data}", "store": str(work / "labelled.zarr"), "rows": rows,
        "contextualizer": str(work / f"ctx-pool{tag}" / "contextualizer"),
        "positive_control": str(work / "ctx-control-own" / "contextualizer"),
        "train_clips": labels, "seeds": a.seeds, "out": str(probe), **probe_opts}))
    probe_sup = work / f"probe-supervised{probe_tag}"
    step("probe (supervised level 1)", probe_sup / "results.json", run_vidsitu, from_dict(
        VidSituProbeConfig, {"data": f"vidsitu:{data}", "store": str(stores[
            "labelled, supervised level 1"][1]), "rows": ["backbone"], "train_clips": labels,
            "seeds": a.seeds, "out": str(probe_sup), **probe_opts}))
    write(work, probe, work / f"ctx-pool{tag}", a, labels, rows, seconds, world, probe_sup)


def write(work: Path, probe: Path, ctx: Path, a: argparse.Namespace, labels: list[int],
          rows_run: list[str], seconds: dict, world: w.World, probe_sup: Path) -> None:
    res = json.loads((probe / "results.json").read_text())
    rows = [{"labels": c["labels"], "row": c["row"], "metric": name, "values": c["values"]}
            for c in res["cells"] for name, key in METRICS.items() if c["metric"] == key]
    rows += [{"labels": c["labels"], "row": "supervised_backbone", "metric": name,
              "values": c["values"]}
             for c in json.loads((probe_sup / "results.json").read_text())["cells"]
             for name, key in METRICS.items() if c["metric"] == key]
    rows_run = ["supervised_backbone", *rows_run]
    summary = json.loads((ctx / "summary.json").read_text())
    level1 = json.loads((work / "backbone" / "summary.json").read_text())
    level1_sup = json.loads((work / "backbone-supervised" / "summary.json").read_text())
    collapse = {k: summary.get(k) for k in ("clip_share_backbone", "clip_share_contextualizer",
                                            "identity_readout", "identity_chance",
                                            "ratio_to_mean_feature")}
    ceiling = w.neighbour_ceiling(world)
    name = "level2" + probe.name[len("probe"):]
    (work / f"{name}.json").write_text(json.dumps({
        "world": {"seed": a.seed, "pool": a.pool, **vars(world)}, "ctx": json.loads(a.ctx),
        "rows": rows,
        "ceiling": ceiling, "collapse": collapse, "seconds": seconds,
        "verb_share": {k: level1.get(k) for k in ("verb_share_at_start", "verb_share")},
        "verb_share_supervised": level1_sup.get("verb_share")},
        indent=2))
    text = [f"# Level 2{probe.name[len('probe'):]}: world seed {a.seed}, pool {a.pool} clips, "
            f"labels "
            f"{', '.join(map(str, labels))}, {a.seeds} probe seeds\n",
            "Ceiling from perfect perception (verb accuracy per group), own segment / with "
            "the adjacent ones: " + "; ".join(
                f"{g} {100 * ceiling['own'][g]:.0f} / {100 * ceiling['with_neighbours'][g]:.0f}"
                for g in ceiling["own"]) + ".\n",
            "Level 1: the verb's share of the features' within-clip variance "
            f"{level1.get('verb_share', float('nan')):.3f} (untrained "
            f"{level1.get('verb_share_at_start', float('nan')):.3f}); supervised level 1 "
            f"{level1_sup.get('verb_share', float('nan')):.3f}.\n",
            "Collapse check of the pool-pretrained contextualizer (on held-out pool clips): "
            f"clip share {number(collapse['clip_share_contextualizer'])} (backbone features "
            f"{number(collapse['clip_share_backbone'])}), identity read-out "
            f"{collapse['identity_readout'] or float('nan'):.2f}, chance "
            f"{collapse['identity_chance'] or float('nan'):.2f}.\n"]
    for n in labels:
        found = {(c["row"], c["metric"]): c["values"] for c in rows if c["labels"] == n}
        body = [[TITLES.get(r, SUPERVISED)[0]] + [cell(found.get((r, m), [float("nan")]))
                                                  for m in METRICS] for r in rows_run]
        text.append(f"\n## {n} labelled clips\n\n" + report.markdown(["Row", *METRICS], body)
                    + "\n")
    text.append(f"\nSeconds per step (this run; cached steps absent): {json.dumps(seconds)}\n")
    (work / f"{name}.md").write_text("\n".join(text))
    report.label_efficiency_plot(res["cells"], labels, work / f"{name}.png",
                                 metrics=list(METRICS.values()))
    print("\n".join(text))


if __name__ == "__main__":
    main()
