"""Backbone weights: loaded without running pickled code, their provenance, their identity."""

from __future__ import annotations

import hashlib
import json

import torch
from torch import nn

from hiermovie.config import ConfigError


def load_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file or a torch checkpoint, never running pickled code."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"backbone.weights: {path}: file not found") from None
    except Exception as e:  # an UnpicklingError names what the file tried to run
        what = next((line.strip() for line in str(e).splitlines()
                     if "Unsupported global" in line), "")
        raise ConfigError(f"backbone.weights: {path}: refused to load: the file holds pickled "
                          f"objects other than tensors{f' ({what[:160]})' if what else ''}; "
                          "convert it to safetensors") from None
    for key in ("model_state", "state_dict", "model"):  # PySlowFast, Lightning, others
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ConfigError(f"backbone.weights: {path}: expected a state dict, got {type(obj)}")
    return obj


ARCHITECTURE_KEY, ORIGIN_KEY = "hiermovie.architecture", "hiermovie.origin"


def weights_origin(path: str) -> dict:
    """The training provenance `pretrain-backbone` writes into a safetensors file's header."""
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    return {"architecture": meta.get(ARCHITECTURE_KEY, ""),
            **json.loads(meta.get(ORIGIN_KEY, "{}"))}


def fingerprint(model: nn.Module) -> str:
    """sha256 over the parameters and buffers, in name order: same weights, same fingerprint."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
                 if t.numel() else b"")
    return h.hexdigest()[:16]
