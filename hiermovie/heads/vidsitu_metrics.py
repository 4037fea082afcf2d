"""VidSitu metrics, computed as the official evaluator (`vidsitu_code/evl_fns.py`) does.

Prediction files are lists of entries keyed by `ann_idx` (the position in the split file): for
verbs `pred_vbs_ev` (5 events x top-5 verb ids), for relations `pred_evrels_ev` (4 pairs x 3),
for roles `vb_output` ({"Ev1": {"Arg0": "...", ...}, ...}). A repeated `ann_idx` keeps its first
entry; a missing one is an error. The roles' metrics are `role_metrics`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from hiermovie.config import ConfigError
from hiermovie.datasets.vidsitu import EVENTS, VidSitu, srl_references
from hiermovie.heads.role_metrics import average, srl_metrics

# what each task's entries hold (the official evaluator's shapes): field, events, per event
SHAPES = {"verb": ("pred_vbs_ev", 5, "a list of ranked verb ids"),
          "relation": ("pred_evrels_ev", 4, "a list of 3 relation labels (one per annotation)"),
          "roles": ("vb_output", 5, "an object of role -> phrase")}


def check_predictions(preds: object, task: str, n: int) -> None:
    """Refuse (one line: the entry and what is wrong) a prediction file that is not the
    official structure, before anything is scored."""
    field, events, what = SHAPES[task]
    if not isinstance(preds, list) or not preds:
        raise ConfigError(f"expected a non-empty list of prediction entries, got "
                          f"{type(preds).__name__}")
    for i, p in enumerate(preds):
        where = f"entry {i}"
        if not isinstance(p, dict) or "ann_idx" not in p or field not in p:
            raise ConfigError(f"{where}: needs ann_idx and {field}: not a {task} prediction "
                              "file (--task picks verb, relation or roles)")
        a = p["ann_idx"]
        if isinstance(a, bool) or not isinstance(a, int | np.integer) or not 0 <= a < n:
            raise ConfigError(f"{where}: ann_idx {a!r} is not an index of the {n} clips")
        v = p[field]
        if task == "roles":
            if not isinstance(v, dict) or not all(
                    isinstance(v[e], dict) and all(isinstance(x, str) for x in v[e].values())
                    for e in v if e in EVENTS):
                raise ConfigError(f"{where} (ann_idx {a}): {field} must map Ev1..Ev5 to {what}")
            continue
        if not isinstance(v, list | tuple) or len(v) != events:
            got = len(v) if isinstance(v, list | tuple) else type(v).__name__
            raise ConfigError(f"{where} (ann_idx {a}): {field} must hold {events} events, "
                              f"got {got}")
        for k, ev in enumerate(v):
            ok = isinstance(ev, list | tuple) and ev and all(isinstance(x, str) for x in ev)
            if not ok or (task == "relation" and len(ev) != 3):
                raise ConfigError(f"{where} (ann_idx {a}): event {k + 1} of {field} must be "
                                  f"{what}, got {ev!r}"[:240])


def by_ann_idx(preds: list[dict[str, Any]], n: int) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for p in preds:
        out.setdefault(int(p["ann_idx"]), p)  # the first entry of an ann_idx wins
    missing = sorted(set(range(n)) - set(out))
    if missing:
        raise ConfigError(f"predictions missing for {len(missing)} ann_idx (first: {missing[:5]})")
    return out


# --- verbs ----------------------------------------------------------------------------------

def verb_metrics(preds: list[list[list[str]]], gts: list[list[list[str]]]) -> dict[str, float]:
    """preds[video][event] = ranked verb ids, gts[video][event] = the annotators' verb ids.

    Acc@K (`Per_Ev_Top_K`): an event is right when any of the top K is any annotator's verb;
    `Per_Vid_Top_K`: all five events of a clip right; `acc`: Acc@5 (the official alias).
    Rec@5 (`recall_macro_1_th_9`): per verb with >= 2 votes in an event, hit = in the top 5;
    averaged per verb, then over verbs kept in more than 9 events (and 0..8 as variants).
    """
    per_ev = {k: [] for k in range(1, 6)}
    per_vid = {k: [] for k in range(1, 6)}
    by_verb: dict[str, list[int]] = {}
    for video_preds, video_gts in zip(preds, gts, strict=True):
        hits = {k: [] for k in range(1, 6)}
        for hyp, gt in zip(video_preds, video_gts, strict=True):
            hyp, gt = list(hyp)[:5], list(gt)[:10]
            for k in range(1, 6):
                hit = int(bool(set(hyp[:k]) & set(gt)))
                per_ev[k].append(hit)
                hits[k].append(hit)
            for verb, votes in Counter(gt).most_common():
                if votes >= 2:
                    by_verb.setdefault(verb, []).append(int(verb in set(hyp)))
        for k in range(1, 6):
            per_vid[k].append(int(all(hits[k])))
    out = {f"Per_Ev_Top_{k}": average(v) for k, v in per_ev.items()}
    out |= {f"Per_Vid_Top_{k}": average(v) for k, v in per_vid.items()}
    out["acc"] = out["Per_Ev_Top_5"]  # the official evaluator's `acc` is Acc@5, not Acc@1
    recalls = [(average(v), len(v)) for v in by_verb.values()]
    for th in range(10):
        kept = [r for r, n in recalls if n > th]
        out[f"recall_macro_1_th_{th}"] = average(kept)
        out[f"num_vbs_thresh_{th}"] = len(kept)
    return out


def score_verbs(preds: list[dict[str, Any]], ds: VidSitu) -> dict[str, float]:
    hyp = by_ann_idx(preds, len(ds))
    return verb_metrics([hyp[i]["pred_vbs_ev"] for i in range(len(ds))],
                        [ds.verb_votes(c) for c in ds.clips])


# --- event relations ------------------------------------------------------------------------

def relation_metrics(preds: list[list[list[str]]], gts: list[list[list[str]]]
                     ) -> dict[str, Any]:
    """preds/gts[video][pair][annotation]: pairs (Ev1,Ev2,Ev4,Ev5 vs Ev3), 3 annotations.

    A pair counts only if its most common label has >= 2 of 3 votes; then every slot whose
    label is that majority label is one sample. Top_1 is micro accuracy; Macro_Top_1 the mean
    over labels of per-label accuracy. (The official code divides by zero for a label seen only
    in pairs without a majority; such labels are left out here.)
    """
    correct: list[bool] = []
    per_label: dict[str, list[bool]] = {}
    for video_preds, video_gts in zip(preds, gts, strict=True):
        for hyp, gt in zip(video_preds, video_gts, strict=True):
            gt = list(gt)[:3]
            if len(hyp) != len(gt):
                raise ConfigError(f"{len(hyp)} relation predictions for {len(gt)} annotations")
            top, votes = Counter(gt).most_common()[0]
            if votes < 2:
                continue
            for h, g in zip(hyp, gt, strict=True):
                if g == top:
                    correct.append(h == g)
                    per_label.setdefault(g, []).append(h == g)
    macro = {k: sum(v) / len(v) for k, v in per_label.items()}
    return {"Top_1": average(correct), "Len": len(correct),
            "Macro_Top_1": average(list(macro.values())), "Macro_Top_Dct": macro}


def score_relations(preds: list[dict[str, Any]], ds: VidSitu) -> dict[str, Any]:
    hyp = by_ann_idx(preds, len(ds))
    return relation_metrics([hyp[i]["pred_evrels_ev"] for i in range(len(ds))],
                            [ds.relations(c, records=3) for c in ds.clips])


# --- semantic roles (their metrics: role_metrics) ----------------------------------------

def score_roles(preds: list[dict[str, Any]], ds: VidSitu) -> dict[str, float]:
    hyp = by_ann_idx(preds, len(ds))
    return srl_metrics([hyp[i]["vb_output"] for i in range(len(ds))], srl_references(ds))


SCORERS = {"verb": score_verbs, "relation": score_relations, "roles": score_roles}
