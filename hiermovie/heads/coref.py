"""Coreference scores of role phrases, as VidSitu's evaluator computes them with its fork of
coval (ns-moosavi/coval, branch coval_29Oct20): mention F1, MUC, B-cubed, CEAF-e, LEA and
LEA-soft.

Why here and not a library: no package on PyPI holds that fork. `lea_soft` exists only in it,
and the CoNLL scorers that are packaged (scorch, the reference Perl scorer) read CoNLL files and
treat mentions missing from one side in their own ways, while VidSitu scores clusters of slot
ids built from phrases (a slot is "Ev{k}_{Arg}"; slots with the same phrase corefer). Each
metric returns the (numerator, denominator) of its precision or recall, as coval does; `Scores`
sums them over clips and gives F1.

Clusters are lists of mention ids; `where[m]` is the index of the other side's cluster that
holds mention m.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

Clusters = Sequence[Sequence[str]]


def assign(clusters: Clusters, other: Clusters) -> dict[str, int]:
    """mention -> index of the cluster of `other` that holds it (mentions of `clusters` only)."""
    where = {m: i for i, c in enumerate(other) for m in c}
    return {m: where[m] for c in clusters for m in c if m in where}


def mentions(clusters: Clusters, where: dict[str, int]) -> tuple[float, float]:
    """Mention detection: how many of these mentions the other side has at all."""
    mine = {m for c in clusters for m in c}
    return float(len(mine & set(where))), float(len(mine))


def muc(clusters: Clusters, where: dict[str, int]) -> tuple[float, float]:
    """MUC (Vilain et al. 1995): links kept, a cluster of n needing n - 1."""
    num = den = 0.0
    for c in clusters:
        parts = {where[m] for m in c if m in where}
        unlinked = sum(m not in where for m in c)
        num += len(c) - unlinked - len(parts)
        den += len(c) - 1
    return num, den


def b_cubed(clusters: Clusters, where: dict[str, int]) -> tuple[float, float]:
    """B-cubed (Bagga & Baldwin 1998): per mention, the share of its cluster in the same other
    cluster, summed (as coval: sum over parts of count^2 / cluster size)."""
    num = den = 0.0
    for c in clusters:
        counts = Counter(where[m] for m in c if m in where)
        num += sum(n * n for n in counts.values()) / len(c)
        den += len(c)
    return num, den


def ceafe(sys: Clusters, key: Clusters) -> tuple[float, float, float, float]:
    """CEAF-e (Luo 2005): the best one-to-one alignment of entities by phi4 (the Dice overlap),
    found by the Hungarian algorithm; (p_num, p_den, r_num, r_den)."""
    from scipy.optimize import linear_sum_assignment

    phi = np.array([[2 * len(set(k) & set(s)) / (len(k) + len(s)) for s in sys] for k in key])
    rows, cols = linear_sum_assignment(-phi.reshape(len(key), len(sys)))
    total = float(phi[rows, cols].sum()) if phi.size else 0.0
    return total, float(len(sys)), total, float(len(key))


def lea(clusters: Clusters, other: Clusters, where: dict[str, int],
        weights: Sequence[Sequence[float]] | None = None) -> tuple[float, float]:
    """LEA (Moosavi & Strube 2016): each entity weighted by its size, scored by the share of its
    links (a singleton: itself) the other side keeps. With `weights` (LEA-soft, VidSitu's), the
    entity's term is also scaled by the mean of its mentions' weights (per-slot CIDEr)."""
    num = den = 0.0
    for i, c in enumerate(clusters):
        if len(c) == 1:
            links = 1.0
            kept = float(c[0] in where and len(other[where[c[0]]]) == 1)
        else:
            links = len(c) * (len(c) - 1) / 2
            kept = float(sum(a in where and b in where and where[a] == where[b]
                             for j, a in enumerate(c) for b in c[j + 1:]))
        if weights is None:
            num += len(c) * kept / links
            den += len(c)
        else:
            num += sum(weights[i]) * len(c) * kept / links
            den += len(weights[i]) * len(c)
    return num, den


class Scores:
    """Precision and recall counts of every metric, summed over clips; `f1()` per metric."""

    NAMES = ("mentions", "muc", "bcub", "ceafe", "lea", "lea_soft")

    def __init__(self) -> None:
        self.counts = {n: np.zeros(4) for n in self.NAMES}

    def update(self, key: Clusters, sys: Clusters,
               sys_weights: Sequence[Sequence[float]]) -> None:
        k2s, s2k = assign(key, sys), assign(sys, key)
        pair: dict[str, Callable[[Clusters, dict[str, int]], tuple[float, float]]] = {
            "mentions": mentions, "muc": muc, "bcub": b_cubed}
        for name, fn in pair.items():
            self.counts[name] += (*fn(sys, s2k), *fn(key, k2s))
        self.counts["ceafe"] += ceafe(sys, key)
        self.counts["lea"] += (*lea(sys, key, s2k), *lea(key, sys, k2s))
        self.counts["lea_soft"] += (*lea(sys, key, s2k, sys_weights), *lea(key, sys, k2s))

    def f1(self) -> dict[str, float]:
        out = {}
        for name, (pn, pd, rn, rd) in self.counts.items():
            p = pn / pd if pd else 0.0
            r = rn / rd if rd else 0.0
            out[name] = 0.0 if p + r == 0 else 2 * p * r / (p + r)
        return out
