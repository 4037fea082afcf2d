"""One seed's VidSitu predictions scored as the official evaluator scores them, from the
validation clips' annotations read once (`datasets.vidsitu.ValidTruth`): the verb and relation
heads' metrics (`score_events`), and the role decoder trained on the seed's events, generating
for the validation clips (`score_roles`). Each also gives the prediction entries the
leaderboard reads."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from hiermovie.datasets.vidsitu import EVENTS, RELATIONS, ValidTruth
from hiermovie.heads import role_metrics as rm
from hiermovie.heads import vidsitu_metrics as vm
from hiermovie.heads.srl import RoleGenerator


def score_events(tasks: list[str], verb_top: torch.Tensor, relation: torch.Tensor,
                 truth: ValidTruth, vocab: list[str]) -> tuple[dict, dict]:
    """Official verb and relation metrics of one seed's validation predictions (`verb_top`:
    [clips, 5, k] ids into `vocab`; `relation`: [clips, 4] ids into `RELATIONS`), and the
    prediction entries per task. Where the clips have event groups (a synthetic world's),
    also top-1 accuracy against the true verb per group."""
    metrics, preds = {}, {}
    if "verb" in tasks:
        per_clip = [[[vocab[j] for j in ev] for ev in clip] for clip in verb_top.tolist()]
        metrics |= {f"verb/{k}": v for k, v in vm.verb_metrics(per_clip,
                                                               truth.verb_votes).items()}
        right: dict[str, list[bool]] = defaultdict(list)
        for groups, clip, verbs in (zip(truth.groups, per_clip, truth.verbs, strict=True)
                                    if truth.groups else ()):
            for g, ev, verb in zip(groups, clip, verbs, strict=True):
                right[g].append(ev[0] == verb)
        metrics |= {f"verb/acc1_{g}": float(np.mean(r)) for g, r in right.items()}
        preds["verb"] = [{"ann_idx": a, "pred_vbs_ev": p}
                         for a, p in zip(truth.ann, per_clip, strict=True)]
    if "relation" in tasks:
        # video-only input: the same prediction for each annotation's slot
        per_clip = [[[RELATIONS[j]] * 3 for j in clip] for clip in relation.tolist()]
        res = vm.relation_metrics(per_clip, truth.relations)
        metrics |= {f"relation/{k}": v for k, v in res.items() if not isinstance(v, dict)}
        metrics |= {f"relation/Macro_Top_Dct/{k}": v for k, v in res["Macro_Top_Dct"].items()}
        preds["relation"] = [{"ann_idx": a, "pred_evrels_ev": p}
                             for a, p in zip(truth.ann, per_clip, strict=True)]
    return metrics, preds


def score_roles(seed: int, train_events: torch.Tensor, valid_events: torch.Tensor,
                texts: list[list[str]], verbs: list[list[str]], truth: ValidTruth,
                epochs: int, precision: str) -> tuple[dict, list]:
    """The role decoder trained on one seed's training events ([clips, 5, D]; `texts` and
    `verbs` per clip and event), generating for the validation events; their official role
    metrics and prediction entries."""
    flat_verbs = [v for clip in verbs for v in clip]
    flat_texts = [t for clip in texts for t in clip]
    gen = RoleGenerator(train_events.shape[-1], flat_texts, flat_verbs, seed=seed).fit(
        train_events.flatten(0, 1), flat_verbs, flat_texts, epochs=epochs, precision=precision)
    refs = truth.refs
    out = gen.predict(valid_events.flatten(0, 1),
                      [r[0][ev]["VerbID"] for r in refs for ev in EVENTS])
    hyps = [{ev: out[i * 5 + k] for k, ev in enumerate(EVENTS)} for i in range(len(refs))]
    preds = [{"ann_idx": a, "vb_output": h} for a, h in zip(truth.ann, hyps, strict=True)]
    return {f"roles/{k}": v for k, v in rm.srl_metrics(hyps, refs).items()}, preds
