"""`hiermovie probe score`: the official metrics of a prediction file (ours or a leaderboard's)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from hiermovie.config import ConfigError
from hiermovie.workflows.probe.config import ScoreConfig


class _PlainUnpickler(pickle.Unpickler):
    """Leaderboard files are pickled lists of dicts: allow nothing that could run code."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray") and name in (
                "scalar", "dtype", "_reconstruct", "ndarray"):
            return getattr(np if module == "numpy" else np.core.multiarray, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a prediction file")


def read_predictions(path: str) -> list[dict[str, Any]]:
    p = Path(path)
    if p.suffix == ".json":
        return json.loads(p.read_text())
    with open(p, "rb") as f:
        return _PlainUnpickler(f).load()


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
        result = vm.SCORERS[cfg.task](preds, ds)
    except (KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"predictions: {cfg.predictions}: not a {cfg.task} prediction file "
                          f"(its entries lack {e}); --task picks verb, relation or roles"
                          ) from None
    except ValueError as e:
        raise ConfigError(f"predictions: {cfg.predictions}: {e}") from None
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=2))
    return 0
