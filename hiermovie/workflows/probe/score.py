"""`hiermovie probe score`: the official metrics of a prediction file (ours or a leaderboard's)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from hiermovie.config import ConfigError
from hiermovie.workflows.probe.config import ScoreConfig


class RefusedPickle(pickle.UnpicklingError, ConfigError):
    """A pickle that asks for anything but plain data."""


class _PlainUnpickler(pickle.Unpickler):
    """Leaderboard files are pickled lists of dicts: allow nothing that could run code."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray") and name in (
                "scalar", "dtype", "_reconstruct", "ndarray"):
            return getattr(np if module == "numpy" else np.core.multiarray, name)
        raise RefusedPickle(f"refusing to load {module}.{name} from a prediction file")


def read_predictions(path: str) -> list[dict[str, Any]]:
    p = Path(path)
    try:
        if p.suffix == ".json":
            return json.loads(p.read_text())
        with open(p, "rb") as f:
            return _PlainUnpickler(f).load()
    except RefusedPickle:
        raise
    except FileNotFoundError:
        raise ConfigError(f"predictions: {path}: no such file") from None
    except (ValueError, pickle.UnpicklingError, EOFError) as e:  # JSONDecodeError is one
        raise ConfigError(f"predictions: {path}: not a JSON or pickled prediction file "
                          f"({str(e)[:120]})") from None
    except RecursionError:
        raise ConfigError(f"predictions: {path}: nested too deeply to be a prediction file "
                          "(a list of dicts, one per clip)") from None


def run_score(cfg: ScoreConfig) -> int:
    """Print the official metrics of one prediction file on the validation clips."""
    from hiermovie.datasets import data_root
    from hiermovie.datasets.vidsitu import VidSitu
    from hiermovie.heads import vidsitu_metrics as vm

    if not cfg.predictions:
        raise ConfigError("predictions: required (a .json or .pkl prediction file)")
    ds = VidSitu(data_root(cfg.data, "vidsitu"), "valid")
    preds = read_predictions(cfg.predictions)
    try:
        vm.check_predictions(preds, cfg.task, len(ds))
        result = vm.SCORERS[cfg.task](preds, ds)
    except ValueError as e:  # ConfigError is one
        raise ConfigError(f"predictions: {cfg.predictions}: {e}") from None
    except RecursionError:
        raise ConfigError(f"predictions: {cfg.predictions}: nested too deeply to be a "
                          "prediction file") from None
    print(json.dumps(result, indent=2))  # every key the official evaluator writes
    return 0
