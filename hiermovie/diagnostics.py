"""What features carry, measured against labels rather than trained on them (a leaf: numpy only,
so the synthetic world and every job can use it)."""

from __future__ import annotations

import numpy as np


def verb_share(features: np.ndarray, verbs: np.ndarray) -> float:
    """The share of the features' within-clip variance that the verb explains.

    `features` [clips, segments, D] (tokens already pooled), `verbs` [clips, segments] labels.
    Each segment's feature less its clip's mean is what a contextualizer must tell apart
    inside a clip (the clip's scene and cast are shared); the verb's share is the R^2 of
    replacing that residual by the mean residual of its verb (in-sample: with a few dozen verbs
    and thousands of events the optimism is small). A backbone about actions scores high,
    one about appearance near zero.
    """
    x = np.asarray(features, np.float64)
    r = (x - x.mean(1, keepdims=True)).reshape(-1, x.shape[-1])
    v = np.asarray(verbs).reshape(-1)
    total = float((r**2).sum())
    if total == 0:
        return 0.0
    _, index = np.unique(v, return_inverse=True)
    means = np.zeros((index.max() + 1, r.shape[1]))
    np.add.at(means, index, r)
    means /= np.bincount(index)[:, None]
    return float(1 - ((r - means[index]) ** 2).sum() / total)
