"""VidSitu metrics, computed as the official evaluator (`vidsitu_code/evl_fns.py`) does.

Prediction files are lists of entries keyed by `ann_idx` (the position in the split file): for
verbs `pred_vbs_ev` (5 events x top-5 verb ids), for relations `pred_evrels_ev` (4 pairs x 3),
for roles `vb_output` ({"Ev1": {"Arg0": "...", ...}, ...}). A repeated `ann_idx` keeps its first
entry; a missing one is an error.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from hiermovie.config import ConfigError
from hiermovie.datasets.vidsitu import EVENTS, SCORED_ROLES, VidSitu, short_role


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

    Acc@K (`Per_Ev_Top_K`): an event is right when any of the top K is any annotator's verb.
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
    out = {f"Per_Ev_Top_{k}": _avg(v) for k, v in per_ev.items()}
    out |= {f"Per_Vid_Top_{k}": _avg(v) for k, v in per_vid.items()}
    recalls = [(_avg(v), len(v)) for v in by_verb.values()]
    for th in range(10):
        kept = [r for r, n in recalls if n > th]
        out[f"recall_macro_1_th_{th}"] = _avg(kept)
        out[f"num_vbs_thresh_{th}"] = len(kept)
    return out


def _avg(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


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
    return {"Top_1": _avg(correct), "Len": len(correct), "Macro_Top_1": _avg(list(macro.values())),
            "Macro_Top_Dct": macro}


def score_relations(preds: list[dict[str, Any]], ds: VidSitu) -> dict[str, Any]:
    hyp = by_ann_idx(preds, len(ds))
    return relation_metrics([hyp[i]["pred_evrels_ev"] for i in range(len(ds))],
                            [ds.relations(c, records=3) for c in ds.clips])


# --- semantic roles -------------------------------------------------------------------------

def srl_references(ds: VidSitu, ix_gt: int = 3, n_refs: int = 3) -> list[list[dict]]:
    """Per ann_idx: the reference records, as the evaluator picks them (seed 5 permutation of
    the clip's records in file order, drop position `ix_gt`, keep the first `n_refs`)."""
    rng = np.random.RandomState(5)  # the evaluator's np.random.seed(5), without the global
    shuffled = [[ds.records[c][r] for r in rng.permutation(len(ds.records[c]))]
                for c in ds.clips]
    return [[r for j, r in enumerate(recs) if j != ix_gt][:n_refs] for recs in shuffled]


def _cider(refs: dict[int, list[str]], hyps: dict[int, list[str]]) -> float:
    from pycocoevalcap.cider.cider import Cider

    if not refs:
        return 0.0
    return float(Cider().compute_score(refs, hyps)[0])


def _rouge(refs: dict[int, list[str]], hyps: dict[int, list[str]]) -> float:
    from pycocoevalcap.rouge.rouge import Rouge

    if not refs:
        return 0.0
    return float(Rouge().compute_score(refs, hyps)[0])


def _macro(refs: dict, hyps: dict, groups: dict[int, str]) -> dict[str, float]:
    members: dict[str, list[int]] = {}
    for i, g in groups.items():
        members.setdefault(g, []).append(i)
    cider, rouge = [], []
    for ids in members.values():
        sub_r, sub_h = {i: refs[i] for i in ids}, {i: hyps[i] for i in ids}
        cider.append(_cider(sub_r, sub_h))
        rouge.append(_rouge(sub_r, sub_h))
    return {"cider": _avg(cider), "rouge": _avg(rouge)}


def _lea(key: list[list[str]], sys: list[list[str]], mention_to_other: dict[str, int]
         ) -> tuple[float, float]:
    """LEA numerator and denominator of `key` entities against `sys` (coval's `lea`)."""
    num, den = 0.0, 0
    for c in key:
        if len(c) == 1:
            all_links = 1.0
            common = int(c[0] in mention_to_other and len(sys[mention_to_other[c[0]]]) == 1)
        else:
            all_links = len(c) * (len(c) - 1) / 2.0
            common = 0
            for i, m in enumerate(c):
                if m in mention_to_other:
                    common += sum(1 for m2 in c[i + 1:] if m2 in mention_to_other
                                  and mention_to_other[m] == mention_to_other[m2])
        num += len(c) * common / all_links
        den += len(c)
    return num, den


def _assign(inp: list[list[str]], out: list[list[str]]) -> dict[str, int]:
    where = {m: i for i, c in enumerate(out) for m in c}
    return {m: where[m] for c in inp for m in c if m in where}


def _clusters(strings: dict[str, str]) -> list[list[str]]:
    """mention -> phrase, grouped by identical phrase (first-seen order)."""
    groups: dict[str, list[str]] = {}
    for mention, phrase in strings.items():
        groups.setdefault(phrase, []).append(mention)
    return list(groups.values())


def lea_score(hyps: list[dict], refs: list[list[dict]]) -> float:
    """Mean over reference index r of the LEA F1 aggregated over all clips."""
    f1s = []
    for r in range(len(refs[0])):
        pn = pd = rn = rd = 0.0
        for hyp, clip_refs in zip(hyps, refs, strict=True):
            if "Ev1" not in hyp:  # as the official code: a clip without Ev1 is skipped
                continue
            ref = clip_refs[r]
            key_m, sys_m = {}, {}
            for ev in EVENTS:
                for long_name, phrase in ref[ev]["Args"].items():
                    role = short_role(long_name)
                    if role not in SCORED_ROLES:
                        continue
                    key_m[f"{ev}_{role}"] = phrase
                    if role in hyp.get(ev, {}):
                        sys_m[f"{ev}_{role}"] = hyp[ev][role]
            key, sys = _clusters(key_m), _clusters(sys_m)
            a, b = _lea(sys, key, _assign(sys, key))
            c, d = _lea(key, sys, _assign(key, sys))
            pn, pd, rn, rd = pn + a, pd + b, rn + c, rd + d
        p = pn / pd if pd else 0.0
        rec = rn / rd if rd else 0.0
        f1s.append(0.0 if p + rec == 0 else 2 * p * rec / (p + rec))
    return _avg(f1s)


def srl_metrics(hyps: list[dict], refs: list[list[dict]]) -> dict[str, float]:
    """hyps[i] = {"Ev1": {"Arg0": phrase, ...}, ...}; refs[i] = that clip's reference records.

    One slot per (clip, event, scored role of reference 0): CIDEr-D and ROUGE-L over all slots,
    CIDEr-verb / CIDEr-arg as the mean of CIDEr-D run inside each verb / role group, and LEA.
    """
    r_str: dict[int, list[str]] = {}
    h_str: dict[int, list[str]] = {}
    verb_of: dict[int, str] = {}
    role_of: dict[int, str] = {}
    for hyp, clip_refs in zip(hyps, refs, strict=True):
        for ev in EVENTS:
            first = clip_refs[0][ev]
            for long_name in first["Args"]:
                role = short_role(long_name)
                if role not in SCORED_ROLES:
                    continue
                i = len(r_str)
                r_str[i] = [ref[ev]["Args"][long_name] for ref in clip_refs]
                h_str[i] = [hyp.get(ev, {}).get(role, "")]
                verb_of[i], role_of[i] = first["VerbID"], role
    by_verb, by_role = _macro(r_str, h_str, verb_of), _macro(r_str, h_str, role_of)
    return {"cider": _cider(r_str, h_str), "rouge": _rouge(r_str, h_str),
            "MacroVb_cider": by_verb["cider"], "MacroArg_cider": by_role["cider"],
            "MacroVb_rouge": by_verb["rouge"], "MacroArg_rouge": by_role["rouge"],
            "lea": lea_score(hyps, refs), "slots": float(len(r_str))}


def score_roles(preds: list[dict[str, Any]], ds: VidSitu) -> dict[str, float]:
    hyp = by_ann_idx(preds, len(ds))
    return srl_metrics([hyp[i]["vb_output"] for i in range(len(ds))], srl_references(ds))


SCORERS = {"verb": score_verbs, "relation": score_relations, "roles": score_roles}
