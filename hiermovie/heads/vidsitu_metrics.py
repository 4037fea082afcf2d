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
    out = {f"Per_Ev_Top_{k}": _avg(v) for k, v in per_ev.items()}
    out |= {f"Per_Vid_Top_{k}": _avg(v) for k, v in per_vid.items()}
    out["acc"] = out["Per_Ev_Top_5"]  # the official evaluator's `acc` is Acc@5, not Acc@1
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


def _caption_scores(refs: dict[int, list[str]], hyps: dict[int, list[str]]
                    ) -> tuple[dict[str, float], list[float]]:
    """pycocoevalcap's corpus CIDEr-D, BLEU-1..4 and ROUGE-L of slots (strings as given: the
    official code builds a PTB tokenizer and never applies it), and each slot's CIDEr-D."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if not refs:
        return {k: 0.0 for k in CAPTION_KEYS}, []
    cider, per_slot = Cider().compute_score(refs, hyps)
    bleu = Bleu(4).compute_score(refs, hyps, verbose=0)[0]
    out = {"cider": float(cider), **{f"bleu_{k + 1}": float(b) for k, b in enumerate(bleu)},
           "rouge": float(Rouge().compute_score(refs, hyps)[0])}
    return out, [float(x) for x in per_slot]


CAPTION_KEYS = ("cider", "bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge")


def _by_group(refs: dict, hyps: dict, groups: dict[int, str]) -> dict[str, dict[str, float]]:
    """The caption scores computed inside each group of slots (IDF recomputed per group)."""
    members: dict[str, list[int]] = {}
    for i, g in groups.items():
        members.setdefault(g, []).append(i)
    return {g: _caption_scores({i: refs[i] for i in ids}, {i: hyps[i] for i in ids})[0]
            for g, ids in members.items()}


def _macro(per_group: dict[str, dict[str, float]]) -> dict[str, float]:
    return {k: _avg([g[k] for g in per_group.values()]) for k in CAPTION_KEYS}


def _clusters(strings: dict[str, str]) -> list[list[str]]:
    """mention -> phrase, grouped by identical phrase (first-seen order)."""
    groups: dict[str, list[str]] = {}
    for mention, phrase in strings.items():
        groups.setdefault(phrase, []).append(mention)
    return list(groups.values())


def coref_scores(hyps: list[dict], refs: list[list[dict]], slot_cider: dict[str, float]
                 ) -> dict[str, float]:
    """Mean over reference index r of the coreference F1s (heads/coref.py) aggregated over all
    clips: key clusters group the slots with the same phrase in reference r, system clusters
    the slots of reference r's roles with the same predicted phrase. `slot_cider` maps
    "{clip}_{Ev}_{Arg}" to its CIDEr-D (LEA-soft's weights)."""
    from hiermovie.heads.coref import Scores

    per_ref = []
    for r in range(len(refs[0])):
        scores = Scores()
        for c, (hyp, clip_refs) in enumerate(zip(hyps, refs, strict=True)):
            if "Ev1" not in hyp:  # as the official code: a clip without Ev1 is skipped
                continue
            key_m, sys_m = {}, {}
            for ev in EVENTS:
                for long_name, phrase in clip_refs[r][ev]["Args"].items():
                    role = short_role(long_name)
                    if role not in SCORED_ROLES:
                        continue
                    key_m[f"{ev}_{role}"] = phrase
                    if role in hyp.get(ev, {}):
                        sys_m[f"{ev}_{role}"] = hyp[ev][role]
            sys = _clusters(sys_m)
            scores.update(_clusters(key_m), sys,
                          [[slot_cider.get(f"{c}_{m}", 0.0) for m in cl] for cl in sys])
        per_ref.append(scores.f1())
    return {k: _avg([f[k] for f in per_ref]) for k in per_ref[0]}


def lea_score(hyps: list[dict], refs: list[list[dict]]) -> float:
    """The leaderboard's LEA: mean over reference index of the LEA F1 over all clips."""
    return coref_scores(hyps, refs, {})["lea"]


def srl_metrics(hyps: list[dict], refs: list[list[dict]]) -> dict[str, float]:
    """hyps[i] = {"Ev1": {"Arg0": phrase, ...}, ...}; refs[i] = that clip's reference records.

    One slot per (clip, event, scored role of reference 0). Every key the official evaluator
    writes: CIDEr-D, BLEU-1..4 and ROUGE-L over all slots; `MacroVb_*` / `MacroArg_*`, the
    mean of those run inside each verb / role group (CIDEr-verb, CIDEr-arg); `{role}_*` per
    role; the coreference F1s (mentions, muc, bcub, ceafe, lea, lea_soft); and `slots`.
    """
    r_str: dict[int, list[str]] = {}
    h_str: dict[int, list[str]] = {}
    verb_of: dict[int, str] = {}
    role_of: dict[int, str] = {}
    name_of: dict[int, str] = {}
    for c, (hyp, clip_refs) in enumerate(zip(hyps, refs, strict=True)):
        for ev in EVENTS:
            first = clip_refs[0][ev]
            for long_name in first["Args"]:
                role = short_role(long_name)
                if role not in SCORED_ROLES:
                    continue
                i = len(r_str)
                r_str[i] = [ref[ev]["Args"][long_name] for ref in clip_refs]
                h_str[i] = [hyp.get(ev, {}).get(role, "")]
                verb_of[i], role_of[i], name_of[i] = first["VerbID"], role, f"{c}_{ev}_{role}"
    overall, per_slot = _caption_scores(r_str, h_str)
    by_role = _by_group(r_str, h_str, role_of)
    out = {**overall,
           **{f"MacroVb_{k}": v for k, v in _macro(_by_group(r_str, h_str, verb_of)).items()},
           **{f"MacroArg_{k}": v for k, v in _macro(by_role).items()},
           **{f"{role}_{k}": v for role, scores in by_role.items() for k, v in scores.items()}}
    slot_cider = {name_of[i]: x for i, x in enumerate(per_slot)}
    return {**out, **coref_scores(hyps, refs, slot_cider), "slots": float(len(r_str))}


def score_roles(preds: list[dict[str, Any]], ds: VidSitu) -> dict[str, float]:
    hyp = by_ann_idx(preds, len(ds))
    return srl_metrics([hyp[i]["vb_output"] for i in range(len(ds))], srl_references(ds))


SCORERS = {"verb": score_verbs, "relation": score_relations, "roles": score_roles}
