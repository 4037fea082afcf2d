"""`hiermovie.diagnostics`: the level-1 verb share."""

import numpy as np
import pytest


def test_verb_share_by_hand():
    from hiermovie.diagnostics import verb_share

    # two clips of verbs (a, b), 1-d features [1, 3] and [0, 4]: within-clip residuals
    # [-1, 1] and [-2, 2] (sum of squares 10 over 4 - 2 clip means = 2 degrees of freedom);
    # verb means -1.5 / 1.5 leave 0.5 each (sum 1 over 2 - 1 verb = 1): 1 - (1 / 1) / (10 / 2)
    assert verb_share(np.array([[[1.0], [3.0]], [[0.0], [4.0]]]),
                      np.array([["a", "b"], ["a", "b"]])) == pytest.approx(0.8)
    # a clip offset alone is not about the verb
    assert verb_share(np.array([[[5.0], [5.0]], [[1.0], [1.0]]]),
                      np.array([["a", "b"], ["b", "a"]])) == 0.0
    # noise is not either (plain R^2: 14 verbs over 300 events would find ~4% in it)
    rng = np.random.default_rng(0)
    noise = verb_share(rng.normal(size=(60, 5, 16)), rng.integers(0, 14, size=(60, 5)))
    assert abs(noise) < 0.03
