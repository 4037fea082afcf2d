"""The probe's reports, in one place for probe vidsitu, probe lvu and demo: Markdown tables,
results.json (`cells`: one entry per label count, row and metric, with a value per seed), the
results chart and the label-efficiency table and plot."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from hiermovie.workflows.probe.config import VidSituProbeConfig
from hiermovie.workflows.probe.rows import ROWS
from hiermovie.workflows.tables import cell, spread

COLUMNS = {  # metric key -> column title, in the paper's order
    "verb/Per_Ev_Top_1": "Verb Acc@1", "verb/Per_Ev_Top_5": "Verb Acc@5",
    "verb/recall_macro_1_th_9": "Verb Rec@5",
    # a synthetic world's event groups (docs/synthetic-benchmark.md), against the true verb
    "verb/acc1_plain": "Verb Acc@1 plain", "verb/acc1_predictable": "Verb Acc@1 predictable",
    "verb/acc1_label_only": "Verb Acc@1 label-only",
    "relation/Macro_Top_1": "Rel mean acc", "relation/Top_1": "Rel top-1",
    "roles/cider": "CIDEr", "roles/MacroVb_cider": "CIDEr-verb",
    "roles/MacroArg_cider": "CIDEr-arg", "roles/rouge": "ROUGE-L", "roles/lea": "LEA",
}
HEADLINE = ("verb/Per_Ev_Top_1", "relation/Macro_Top_1", "roles/cider")  # label-efficiency
ROLE_TITLES = {"cider": "CIDEr", "rouge": "ROUGE-L"}


def breakdown_title(metric: str) -> str | None:
    """The second table's column for an official per-class or per-role key, else None."""
    if metric.startswith("relation/Macro_Top_Dct/"):
        return f"Rel acc {metric.rsplit('/', 1)[1]}"
    role, _, kind = metric.removeprefix("roles/").partition("_")
    if metric.startswith("roles/") and role in ("Arg0", "Arg1", "Arg2", "ALoc", "AScn") \
            and kind in ROLE_TITLES:
        return f"{role} {ROLE_TITLES[kind]}"
    return None


def markdown(header: list[str], body: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(r) + " |" for r in body])


def by_row(cells: list[dict], labels: int) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for c in cells:
        if c["labels"] == labels:
            out.setdefault(c["row"], {})[c["metric"]] = c["values"]
    return out


def metric_table(rows: dict[str, dict[str, list[float]]], first: list[str] | None = None,
                 names: dict[str, list[str]] | None = None, breakdown: bool = False) -> str:
    """A row per (row name), a column per metric present, cells mean +- std over seeds: the
    leaderboard's metrics, or with `breakdown` the per-class and per-role ones."""
    present = list(dict.fromkeys(k for m in rows.values() for k in m))
    titles = ({c: t for c in sorted(present) if (t := breakdown_title(c))} if breakdown
              else {c: COLUMNS[c] for c in COLUMNS if c in present})
    body = [(names[r] if names else [ROWS[r][0]]) + [cell(m[c]) if c in m else "-"
                                                      for c in titles] for r, m in rows.items()]
    return markdown((first or ["Row"]) + list(titles.values()), body)


def vidsitu_caption(cfg: VidSituProbeConfig, coverage: dict, backbone: str, selection: int,
                    hidden: int) -> str:
    return (f"Backbone `{backbone}`; evaluated on {coverage['valid']['available']} of "
            f"{coverage['valid']['annotated']} validation clips; heads trained on labelled "
            f"training clips, each row's learning rate (of {', '.join(map(str, cfg.lrs))}) and "
            f"epochs (up to {cfg.epochs}) chosen on {selection} held-out training clips; "
            f"{spread(cfg.seeds)}; {cfg.head} heads (hidden width {hidden} for every row, "
            f"{cfg.precision}).")


def write_vidsitu(out: Path, cfg: VidSituProbeConfig, rows: list, cells: list[dict], chosen: dict,
                  caption: str, coverage: dict, seconds: dict) -> str:
    counts = sorted({c["labels"] for c in cells})
    top = counts[-1]
    text = (f"{caption}\n\nAt {top} labelled clips:\n\n{metric_table(by_row(cells, top))}\n")
    if any(breakdown_title(c["metric"]) for c in cells):
        text += ("\nPer relation class and per role (the official evaluator's breakdown; every "
                 "official key is in results.json):\n\n"
                 f"{metric_table(by_row(cells, top), breakdown=True)}\n")
    if edges := grid_edges(cfg, chosen):
        text += ("\nChosen at the edge of the search (a wider `--lrs` or more `--epochs` may "
                 f"do better): {'; '.join(edges)}.\n")
    if len(counts) > 1:
        eff = label_efficiency_table(cells, counts)
        (out / "label_efficiency.md").write_text(eff + "\n")
        label_efficiency_plot(cells, counts, out / "label_efficiency.png")
        text += f"\nLabel efficiency (mean +- std over seeds):\n\n{eff}\n"
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps({
        "config": asdict(cfg), "coverage": coverage, "seconds": seconds,
        "rows": {r.name: {"title": r.title, "mode": r.mode, "chosen": chosen[r.name]}
                 for r in rows},
        "cells": cells}, indent=2))
    chart(by_row(cells, top), out / "results.png", f"at {top} labelled clips")
    return text


def grid_edges(cfg: VidSituProbeConfig, chosen: dict) -> list[str]:
    """Rows whose chosen learning rate or epochs sit at the edge of what was searched."""
    edges = []
    for row, per_count in chosen.items():
        for n, c in per_count.items():
            why = []
            if len(cfg.lrs) > 1 and c["lr"] in (min(cfg.lrs), max(cfg.lrs)):
                end = "largest" if c["lr"] == max(cfg.lrs) else "smallest"
                why.append(f"lr {c['lr']:g}, the {end} tried")
            if c["epochs"] == cfg.epochs and cfg.eval_every < cfg.epochs:
                why.append(f"{c['epochs']} epochs, the most")
            if why:
                edges.append(f"{row} at {n} clips: {', '.join(why)}")
    return edges


def label_efficiency_table(cells: list[dict], counts: list[int]) -> str:
    metrics = [m for m in HEADLINE if any(c["metric"] == m for c in cells)]
    body = []
    for r in dict.fromkeys(c["row"] for c in cells):
        for m in metrics:
            vals = {c["labels"]: c["values"] for c in cells if c["row"] == r and c["metric"] == m}
            body.append([ROWS[r][0], COLUMNS[m]] + [cell(vals[n]) if n in vals else "-"
                                                    for n in counts])
    return markdown(["Row", "Metric"] + [f"{n} clips" for n in counts], body)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def label_efficiency_plot(cells: list[dict], counts: list[int], path: Path,
                          metrics: list[str] | None = None) -> None:
    """A panel per metric (default: the headline ones): metric vs labelled clips, a line per
    row, std bars."""
    plt = _plt()
    metrics = [m for m in metrics or HEADLINE if any(c["metric"] == m for c in cells)]
    fig, axes = plt.subplots(1, len(metrics), squeeze=False, figsize=(4.2 * len(metrics), 3.6))
    for ax, m in zip(axes[0], metrics, strict=True):
        for r in dict.fromkeys(c["row"] for c in cells):
            pts = sorted((c["labels"], c["values"]) for c in cells
                         if c["row"] == r and c["metric"] == m)
            ax.errorbar([n for n, _ in pts], [100 * np.mean(v) for _, v in pts],
                        yerr=[100 * np.std(v) for _, v in pts], marker="o", capsize=3,
                        label=ROWS[r][0])
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xticks(counts, [str(n) for n in counts])
        ax.set_xlabel("labelled training clips")
        ax.set_ylabel(COLUMNS[m] + (" (x100)" if "cider" in m else " (%)"))
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", fontsize=7, ncol=2)
    fig.suptitle("Label efficiency on the validation clips (bars: std over seeds)", x=0.02,
                 ha="left")
    fig.tight_layout(rect=(0, 0.05 + 0.045 * ((len(set(c["row"] for c in cells)) + 1) // 2),
                           1, 0.93))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def chart(results: dict[str, dict[str, list[float]]], path: Path, note: str) -> None:
    """Bars per metric family (CIDEr-like scores and percentages do not share an axis)."""
    plt = _plt()
    cols = [c for c in COLUMNS if any(c in m for m in results.values())]
    families = [(t, f) for t, f in (
        ("accuracy / recall / ROUGE-L / LEA (%)", [c for c in cols if "cider" not in c]),
        ("CIDEr (x100)", [c for c in cols if "cider" in c])) if f]
    fig, axes = plt.subplots(1, len(families), squeeze=False, figsize=(
        max(6, 1.2 * len(cols) + 2), 4.4), gridspec_kw={"width_ratios": [len(f) for _, f in
                                                                         families]})
    width = 0.8 / max(1, len(results))
    for ax, (title, fam) in zip(axes[0], families, strict=True):
        for i, (row, m) in enumerate(results.items()):
            ax.bar(np.arange(len(fam)) + i * width, [100 * np.mean(m.get(c, [0])) for c in fam],
                   width, yerr=[100 * np.std(m.get(c, [0])) for c in fam], capsize=2,
                   label=ROWS[row][0])
        ax.set_xticks(np.arange(len(fam)) + width * (len(results) - 1) / 2)
        ax.set_xticklabels([COLUMNS[c] for c in fam], rotation=30, ha="right")
        ax.set_ylabel(title)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper right", fontsize=7, ncol=2)
    fig.suptitle(f"Probe results on the validation clips, {note}", x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.78))
    fig.savefig(path, dpi=120)
    plt.close(fig)
