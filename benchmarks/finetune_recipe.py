"""Which fine-tune recipe the probe's fine-tuned rows (scratch, pretrained) default to.

    .venv/bin/python benchmarks/finetune_recipe.py --data vidsitu:runs/demo/synth \\
        --store runs/demo/features.zarr --contextualizer runs/demo/ctx/contextualizer

One factor of `FinetuneConfig` changed at a time from its current defaults; each variant runs
`probe vidsitu` (verb + relation, the rows' usual learning-rate and epoch selection, 3 seeds).
The recommended default is the variant with the best mean *selection* score (held-out training
clips) over both rows; validation numbers are printed beside it but choose nothing.
Writes OUT/recipe.md and OUT/recipe.json.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from hiermovie.config import from_dict
from hiermovie.workflows.probe import VidSituProbeConfig
from hiermovie.workflows.probe.config import FinetuneConfig
from hiermovie.workflows.probe.report import markdown
from hiermovie.workflows.probe.vidsitu import run_vidsitu
from hiermovie.workflows.steps import Steps
from hiermovie.workflows.tables import cell

DEFAULTS = asdict(FinetuneConfig())
VARIANTS = {"ctx_lr_scale": [0.1, 0.3, 1.0], "layer_decay": [0.7, 1.0],
            "warmup_epochs": [0.0, 2.0], "readout": ["last", "mean"], "concat_own": [True, False]}
ROWS = ["scratch", "pretrained"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--contextualizer", required=True)
    ap.add_argument("--out", default="runs/bench-recipe")
    ap.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args()
    out = Path(a.out)
    variants = [("defaults", {})] + [(f"{k}={v}", {k: v}) for k, vs in VARIANTS.items()
                                     for v in vs if v != DEFAULTS[k]]
    results, step = [], Steps()
    for name, change in variants:
        folder = out / "_".join(f"{k}_{v}" for k, v in (DEFAULTS | change).items())
        step(name, folder / "results.json", run_vidsitu, from_dict(VidSituProbeConfig, {
            "data": a.data, "store": a.store, "contextualizer": a.contextualizer,
            "rows": ROWS, "tasks": ["verb", "relation"], "seeds": a.seeds,
            "finetune": DEFAULTS | change, "progress": False, "out": str(folder)}))
        res = json.loads((folder / "results.json").read_text())
        n = max(int(k) for k in res["rows"][ROWS[0]]["chosen"])
        val = {(c["row"], c["metric"]): c["values"] for c in res["cells"] if c["labels"] == n}
        results.append({"variant": name, "rows": {r: {
            "selection": res["rows"][r]["chosen"][str(n)]["selection_score"],
            "chosen": res["rows"][r]["chosen"][str(n)],
            "verb_acc1": val[(r, "verb/Per_Ev_Top_1")],
            "relation_mean_acc": val[(r, "relation/Macro_Top_1")]} for r in ROWS}})
    for r in results:
        r["selection"] = float(np.mean([v["selection"] for v in r["rows"].values()]))
    best = max(results, key=lambda r: r["selection"])
    head = ["Variant", "Selection score (mean of rows)"] + [
        f"{row}: {m}" for row in ROWS for m in ("selection", "verb Acc@1", "rel mean acc")]
    body = [[r["variant"] + (" **(best)**" if r is best else ""), f"{r['selection']:.3f}"] + [
        x for row in ROWS for x in (f"{r['rows'][row]['selection']:.3f}",
                                    cell(r["rows"][row]["verb_acc1"]),
                                    cell(r["rows"][row]["relation_mean_acc"]))]
        for r in results]
    table = markdown(head, body)
    (out / "recipe.md").write_text(table + "\n")
    (out / "recipe.json").write_text(json.dumps({"defaults": DEFAULTS, "results": results,
                                                 "best": best["variant"]}, indent=1))
    print(table)
    print(f"best by selection score: {best['variant']}")


if __name__ == "__main__":
    main()
