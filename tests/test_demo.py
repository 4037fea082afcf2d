"""The demo's printed table and verdict (the runs themselves are `make demo`'s)."""

from hiermovie.workflows.demo import SHORT, judge, terminal_table

METRICS = ("verb/Per_Ev_Top_1", "verb/Per_Ev_Top_5", "verb/recall_macro_1_th_9",
           "verb/acc1_predictable", "relation/Macro_Top_1", "roles/cider", "roles/lea")


def _results(acc1: dict[str, list[float]], hidden: dict[str, list[float]]) -> dict:
    cells = []
    for row in SHORT:
        for m in METRICS:
            values = {"verb/Per_Ev_Top_1": acc1, "verb/acc1_predictable": hidden}.get(m)
            cells.append({"labels": 96, "row": row, "metric": m,
                          "values": values[row] if values else [0.5, 0.5, 0.5]})
    return {"cells": cells}


ACC1 = {"backbone": [0.50, 0.51, 0.49], "scratch": [0.55, 0.56, 0.54],
        "pretrained_frozen": [0.52, 0.52, 0.52], "pretrained": [0.60, 0.61, 0.59],
        "random_frozen": [0.45, 0.45, 0.46], "random_selfonly": [0.44, 0.44, 0.44],
        "positive_control": [0.30, 0.31, 0.29]}
HIDDEN = {**{r: [0.10, 0.12, 0.08] for r in SHORT}, "pretrained": [0.10, 0.14, 0.06]}


def test_table_fits_80_columns_in_the_seeds_order_and_drops_a_failed_control():
    text = terminal_table({"zoo/tiny3d-modist-actions (shipped weights)": {
        "results": _results(ACC1, HIDDEN)}})
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80
    names = [line[:27].strip() for line in lines[2:]]
    assert names[:4] == ["level 1 alone", "+ context, from scratch",
                         "+ mask-pretrained, frozen", "+ mask-pretrained, tuned"]
    # the label-trained control scored below random frozen: left out, with the reason
    assert "control: label-trained" not in names
    assert "label-trained left out: verb Acc@1 30.0, not above random frozen's 45.3" in " ".join(
        lines)
    passing = terminal_table({"x": {"results": _results(
        {**ACC1, "positive_control": [0.7, 0.7, 0.7]}, HIDDEN)}})
    assert "control: label-trained" in passing and "left out" not in passing


def test_verdict_says_above_level_or_below_by_twice_the_spread():
    words = judge(_results(ACC1, HIDDEN))
    # verbs: +10.0 over level 1 alone and +5.0 over scratch, spreads ~0.8: above both; hidden
    # events: the same mean, within the spread: level with
    assert "against level 1 alone, above it on verbs (+10.0 points" in words
    assert "against a contextualizer trained from scratch, above it on verbs (+5.0" in words
    assert "level with it on hidden-event verbs (+0.0 points" in words
    below = judge(_results({**ACC1, "pretrained": [0.40, 0.40, 0.40]}, HIDDEN))
    assert "below it on verbs (-10.0 points" in below
