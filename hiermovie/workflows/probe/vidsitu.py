"""`hiermovie probe vidsitu`: each row's heads on the VidSitu tasks, at one or more label counts.

The training clips are split once (seeded) into selection clips, which choose each row's
learning rate and epochs, and the labelled pool; a label count n trains seed s of every row on
the same n pool clips. Validation clips only ever score the chosen checkpoint.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from hiermovie.config import ConfigError
from hiermovie.datasets.vidsitu import RELATIONS
from hiermovie.heads.vidsitu import score_events, score_roles
from hiermovie.workflows.probe import report
from hiermovie.workflows.probe.config import VidSituProbeConfig
from hiermovie.workflows.probe.fitting import (
    FinetunedRow,
    Fitting,
    FrozenRow,
    HeadShape,
    choose,
    trainer,
)
from hiermovie.workflows.probe.rows import EventFeatures, build_rows, head_hidden
from hiermovie.workflows.probe.vidsitu_data import VidSituData, load_vidsitu
from hiermovie.workflows.progress import progress


def subsets(pool: int, n: int, seeds: int) -> torch.Tensor:
    """[seeds, n] pool indices; seed s's subsets are nested and shared by every row."""
    return torch.stack([torch.from_numpy(np.sort(np.random.RandomState(1000 + s).permutation(
        pool)[:n])) for s in range(seeds)])


def run_vidsitu(cfg: VidSituProbeConfig) -> int:
    """Train each row's heads on the store's features and write the comparison tables:
    data -> rows -> for each row and label count: select, score, roles -> report."""
    t0 = time.time()
    if not cfg.store:
        raise ConfigError("store: required (a store written by `hiermovie extract`)")
    d = load_vidsitu(cfg)
    counts = cfg.label_counts(len(d.pool_ids))
    prov = d.provenance
    rows = build_rows(list(cfg.rows), cfg.contextualizer, cfg.positive_control,
                      vars(cfg.model), prov.dim, prov.tokens_per_segment)
    lrs = cfg.lrs if any(t != "roles" for t in cfg.tasks) else []  # verbs or relations
    if not lrs and (tuned := [r.name for r in rows if r.mode == "finetune"]):
        raise ConfigError(f"tasks: rows {', '.join(tuned)} fine-tune the contextualizer with "
                          "the verb/relation heads; --tasks roles alone trains none")
    f = fitting(cfg, d, rows)
    timing: dict[str, float] = defaultdict(float, data=time.time() - t0)
    bar = progress(total=len(counts) * sum(
        trainer(r).fits(cfg.seeds, len(lrs)) + cfg.seeds * ("roles" in cfg.tasks) for r in rows),
        desc="probe", unit="fit", enabled=cfg.progress)
    f.on_epoch = lambda desc, epoch, loss: bar.set_postfix_str(
        f"{desc} epoch {epoch} loss {loss:.3f}", refresh=False)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cells, chosen = [], {r.name: {} for r in rows}
    for row in rows:
        t = time.time()
        fitter = trainer(row)(f, row, d.pool, d.select, d.valid, bar.update)
        timing["data"] += time.time() - t
        for n in counts:
            sub = subsets(len(d.pool_ids), n, cfg.seeds)
            per_seed, choice = fit_at(cfg, d, fitter, f"{row.name}_n{n}", sub, bool(lrs),
                                      timing, bar.update)
            chosen[row.name] |= {n: choice} if choice else {}
            cells += [{"labels": n, "row": row.name, "metric": key,
                       "values": [float(p[key]) for p in per_seed]} for key in per_seed[0]]
    bar.close()
    timing["total"] = time.time() - t0
    dim = d.pool.features.shape[-1]
    backbone = prov.backbone + (f" + `{cfg.fuse_store}` ({dim - prov.dim}-d, fused)"
                                if cfg.fuse_store else "")
    caption = report.vidsitu_caption(cfg, d.coverage, backbone, len(d.select_ids),
                                     f.heads.hidden)
    print(report.write_vidsitu(out, cfg, rows, cells, chosen, caption, d.coverage,
                               dict(timing)))
    return 0


def fitting(cfg: VidSituProbeConfig, d: VidSituData, rows: list) -> Fitting:
    """The small typed values every fit of this run reads."""
    pooled, dim = d.pool.features.mean(2), d.pool.features.shape[-1]
    ft = cfg.finetune
    hidden = head_hidden(rows, dim, cfg.hidden, ft.readout, ft.concat_own)
    events = EventFeatures.standardising(pooled, d.provenance.dim, ft.readout, ft.concat_own)
    heads = HeadShape(hidden, len(d.vocab), len(RELATIONS), cfg.head)
    schedule = cfg.schedule()
    return Fitting(schedule, events, heads, list(cfg.tasks), ft)


def fit_at(cfg: VidSituProbeConfig, d: VidSituData, fitter: FrozenRow | FinetunedRow,
           name: str, sub: torch.Tensor, heads: bool, timing: dict[str, float],
           on_fit: Callable[[], None]) -> tuple[list[dict], dict]:
    """One row at one label count (`sub`: each seed's clips): with `heads`, the (lr, epochs)
    chosen on the selection clips and scored on validation; then the role decoder on that
    run's events. Returns each seed's metrics and the choice."""
    out = Path(cfg.out)
    per_seed: list[dict] = [{} for _ in range(cfg.seeds)]
    lr, epochs, choice = 0.0, 0, {}
    if heads:
        t = time.time()
        (lr, epochs), best = choose(fitter.select_runs(sub))
        timing["train"] += time.time() - t
        choice = {"lr": lr, "epochs": epochs, "selection_score": float(np.mean(best.score))}
        t = time.time()
        for s, metrics in enumerate(per_seed):
            m, preds = score_events(cfg.tasks, best.verb_top[s], best.relation[s], d.truth,
                                    d.vocab)
            metrics |= m
            for task, entries in preds.items():
                (out / f"pred_{task}_{name}_seed{s}.json").write_text(json.dumps(entries))
        timing["metrics"] += time.time() - t
    for s in range(cfg.seeds) if "roles" in cfg.tasks else []:
        t = time.time()
        ev_tr, ev_va = fitter.role_events(s, sub[s], lr, epochs)
        timing["train"] += time.time() - t
        t = time.time()
        clips = sub[s].tolist()
        m, preds = score_roles(s, ev_tr, ev_va, [d.pool_roles[i] for i in clips],
                               [[d.vocab[v] for v in d.pool.verbs[i].tolist()] for i in clips],
                               d.truth, cfg.role_epochs, cfg.precision)
        timing["generation"] += time.time() - t
        per_seed[s] |= m
        (out / f"pred_roles_{name}_seed{s}.json").write_text(json.dumps(preds))
        on_fit()
    return per_seed, choice
