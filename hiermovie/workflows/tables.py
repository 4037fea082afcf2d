"""How result tables write a metric over seeds, in one place for probe, probe lvu and demo."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def cell(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    """'mean +- std' over seeds; one value alone is written alone (no spread was measured)."""
    v = np.asarray(values, np.float64) * scale
    return f"{v.mean():.{digits}f} +- {v.std():.{digits}f}" if len(v) > 1 else f"{v[0]:.{digits}f}"


def spread(seeds: int) -> str:
    """The caption's words for what a cell holds."""
    return f"mean +- std over {seeds} seeds" if seeds > 1 else "one seed (no spread measured)"


def gain(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Row a's mean gain over row b in points, and the bar a real gain must clear: 2 x the
    larger std over seeds of the two."""
    x, y = (np.asarray(v, np.float64) * 100 for v in (a, b))
    return float(x.mean() - y.mean()), float(2 * max(x.std(), y.std()))


def number(value: float | None, spec: str = ".2f") -> str:
    """A measured value, or "n/a" where there was too little data to measure it (None)."""
    return "n/a" if value is None else format(value, spec)
