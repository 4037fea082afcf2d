"""The high-level contextualizer, its mask-prediction objective, and how it is read."""

from hiermovie.contextualizer.masking import random_mask
from hiermovie.contextualizer.model import (
    Contextualizer,
    ContextualizerConfig,
    ContextualizerShape,
    load_contextualizer,
)
from hiermovie.contextualizer.objectives import mask_loss, targets
from hiermovie.contextualizer.predictors import LabelPredictor, MaskPredictor, MaskSpec
from hiermovie.contextualizer.readout import read_out

__all__ = ["Contextualizer", "ContextualizerConfig", "ContextualizerShape", "LabelPredictor",
           "MaskPredictor", "MaskSpec", "load_contextualizer", "mask_loss", "random_mask",
           "read_out", "targets"]
