"""VidSitu metrics on hand-computed cases, including the evaluator's edge cases."""

import numpy as np
import pytest

from hiermovie.heads import vidsitu_metrics as vm

Q = ["q1", "q2", "q3", "q4"]


def test_verb_metrics_hand_computed():
    gt1 = ["x"] * 6 + ["y"] * 3 + ["z"]  # z has one vote: counts for accuracy, not recall
    v1_preds = [["z", *Q], ["q", "x", *Q[:3]], ["x", "y", *Q[:3]], ["x", "y", *Q[:3]],
                ["x", "y", *Q[:3]]]
    v2_preds = [["w", *Q]] * 5
    out = vm.verb_metrics([v1_preds, v2_preds], [[gt1] * 5, [["w"] * 10] * 5])
    assert out["Per_Ev_Top_1"] == pytest.approx(0.9)
    assert out["Per_Ev_Top_5"] == pytest.approx(1.0)
    assert out["Per_Vid_Top_1"] == pytest.approx(0.5)
    # per verb: x hits 4 of 5 events, y 3 of 5, w 5 of 5 (each kept in 5 events)
    assert out["recall_macro_1_th_0"] == pytest.approx((0.8 + 0.6 + 1.0) / 3)
    assert out["recall_macro_1_th_4"] == pytest.approx(0.8)
    assert out["recall_macro_1_th_5"] == 0 and out["num_vbs_thresh_5"] == 0
    # predictions are cut to 5 and annotations to 10
    long_pred = [["a", "b", "c", "d", "e", "x"]] * 5
    long_gt = [["x"] * 10 + ["a"] * 5] * 5
    assert vm.verb_metrics([long_pred], [long_gt])["Per_Ev_Top_5"] == 0


def test_verb_recall_needs_more_than_nine_events():
    gts = [[["v"] * 10] * 5] * 2  # "v" kept in 10 events
    preds = [[["v", *Q]] * 5, [[*Q, "u"]] * 5]
    out = vm.verb_metrics(preds, gts)
    assert out["recall_macro_1_th_9"] == pytest.approx(0.5)
    assert vm.verb_metrics(preds[:1], gts[:1])["recall_macro_1_th_9"] == 0  # only 5 events


def test_relation_metrics_hand_computed():
    gts = [[["Causes", "Causes", "NoRel"], ["Enables", "NoRel", "Causes"],
            ["NoRel"] * 3, ["Reaction To"] * 3]]
    preds = [[["Causes", "Enables", "NoRel"], ["Enables"] * 3, ["NoRel", "NoRel", "Causes"],
              ["Reaction To"] * 3]]
    out = vm.relation_metrics(preds, gts)
    assert out["Len"] == 8  # the pair without a 2-of-3 majority is skipped; minority slots too
    assert out["Top_1"] == pytest.approx(6 / 8)
    assert out["Macro_Top_1"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert set(out["Macro_Top_Dct"]) == {"Causes", "NoRel", "Reaction To"}


def _ev(verb, args):
    names = {"Arg0": "Arg0 (doer)", "Arg1": "Arg1 (thing)", "AMnr": "ArgM (manner)"}
    return {"VerbID": verb, "Args": {names[k]: v for k, v in args.items()},
            "Arg_List": {names[k]: str(i) for i, k in enumerate(args)}}


def _clip():
    return {"Ev1": _ev("a.01", {"Arg0": "red circle", "Arg1": "blue box"}),
            "Ev2": _ev("b.01", {"Arg0": "red circle", "Arg1": "green gem"}),
            "Ev3": _ev("c.01", {"AMnr": "fast"}), "Ev4": _ev("c.01", {"AMnr": "fast"}),
            "Ev5": _ev("c.01", {"AMnr": "slowly"})}


def test_srl_lea_and_missing_hypotheses():
    refs = [[_clip(), _clip(), _clip()]]
    hyp = [{"Ev1": {"Arg0": "red circle", "Arg1": "red circle"},
            "Ev2": {"Arg0": "red circle", "Arg1": "gem"}, "Ev3": {}, "Ev4": {}, "Ev5": {}}]
    # key entities {E1A0, E2A0}, {E1A1}, {E2A1}; system {E1A0, E1A1, E2A0}, {E2A1}:
    # recall (2*1 + 0 + 1) / 4, precision (3*1/3 + 1) / 4, F1 0.6
    assert vm.lea_score(hyp, refs) == pytest.approx(0.6)
    out = vm.srl_metrics(hyp, refs)
    assert out["slots"] == 4  # AMnr is never scored
    perfect = [{"Ev1": {"Arg0": "red circle", "Arg1": "blue box"},
                "Ev2": {"Arg0": "red circle", "Arg1": "green gem"}}]
    assert vm.lea_score(perfect, refs) == pytest.approx(1.0)
    missing = vm.srl_metrics([{"Ev1": {"Arg0": "red circle"}}], refs)  # others score as ""
    assert missing["rouge"] == pytest.approx(0.25)
    assert vm.srl_metrics(perfect, refs)["rouge"] == pytest.approx(1.0)
    assert vm.lea_score([{}], refs) == 0  # a clip without Ev1 is skipped, as in the evaluator


def test_one_item_group_scores_zero():
    assert vm._cider({0: ["red circle", "red circle"]}, {0: ["red circle"]}) == 0
    assert vm._cider({0: ["red circle"] * 3, 1: ["blue box"] * 3},
                     {0: ["red circle"], 1: ["blue box"]}) > 0


def test_srl_references_follow_seed_five():
    class Fake:
        clips = ["a", "b"]
        records = {"a": [{"id": i} for i in range(4)], "b": [{"id": i} for i in range(5)]}
    np.random.seed(5)
    pa, pb = np.random.permutation(4), np.random.permutation(5)
    refs = vm.srl_references(Fake())
    assert [r["id"] for r in refs[0]] == [int(pa[j]) for j in range(4) if j != 3][:3]
    assert [r["id"] for r in refs[1]] == [int(pb[j]) for j in range(5) if j != 3][:3]


def test_prediction_entries_first_wins_and_missing_is_an_error():
    got = vm.by_ann_idx([{"ann_idx": 1, "v": "first"}, {"ann_idx": 0}, {"ann_idx": 1, "v": "x"}],
                        2)
    assert got[1]["v"] == "first"
    with pytest.raises(ValueError, match="missing for 1 ann_idx"):
        vm.by_ann_idx([{"ann_idx": 0}], 2)
