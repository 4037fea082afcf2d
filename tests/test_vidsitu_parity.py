"""hiermovie's VidSitu scores equal the official evaluator's on held-out prediction files.

tests/data/vidsitu_parity holds a validation split, prediction files with the evaluator's edge
cases, and the scores `vidsitu_code/evl_fns.py` gave them (scripts/vidsitu_parity.py wrote it,
running the official code, which hiermovie does not ship).
"""

import json
from pathlib import Path

import pytest

from hiermovie.datasets.vidsitu import VidSitu
from hiermovie.heads import vidsitu_metrics as vm
from hiermovie.workflows.probe import read_predictions

DATA = Path(__file__).parent / "data" / "vidsitu_parity"
OFFICIAL = json.loads((DATA / "official_scores.json").read_text())


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_scores_equal_the_official_evaluator(name):
    task, official = OFFICIAL[name]["task"], OFFICIAL[name]["official"]
    ours = vm.SCORERS[task](read_predictions(str(DATA / f"{name}.pkl")), VidSitu(DATA, "valid"))
    assert len(official) >= 3
    for metric, value in official.items():
        assert ours[metric] == pytest.approx(value, abs=1e-9, rel=0), metric
