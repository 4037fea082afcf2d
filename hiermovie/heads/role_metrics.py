"""VidSitu's semantic-role metrics, as the official evaluator computes them: CIDEr, BLEU and
ROUGE-L over role phrases (overall, per verb and per argument, macro-averaged), and LEA, the
co-reference score of the same entity named alike across events."""

from __future__ import annotations

from hiermovie.datasets.vidsitu import EVENTS, SCORED_ROLES, short_role


def average(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


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
    return {k: average([g[k] for g in per_group.values()]) for k in CAPTION_KEYS}


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
    return {k: average([f[k] for f in per_ref]) for k in per_ref[0]}


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
