"""`hiermovie probe vidsitu|lvu|score`: the research instrument that judges a contextualizer."""

from hiermovie.workflows.probe.config import (
    FinetuneConfig,
    LvuProbeConfig,
    ScoreConfig,
    VidSituProbeConfig,
)
from hiermovie.workflows.probe.score import read_predictions, run_score

__all__ = ["FinetuneConfig", "LvuProbeConfig", "ScoreConfig", "VidSituProbeConfig",
           "read_predictions", "run_score"]
