"""PySlowFast's checkpoints in PyTorchVideo's names: Caffe2 blob pickles (the `.pkl` files of
PySlowFast's model zoo and VidSitu's `SLOWFAST_CU_8x8_R50.pkl`) and PySlowFast's own parameter
names.

A Caffe2 `.pkl` is a Python pickle of `{"blobs": {name: numpy array}}`. It is read by an
unpickler that admits numpy arrays and nothing else, so a file that would run code is refused
before anything in it runs. Names go Caffe2 -> PySlowFast by the rules of PySlowFast's
`c2_model_loading.get_name_convert_func`, then PySlowFast -> PyTorchVideo by block position.
"""

from __future__ import annotations

import importlib
import pickle
import re

import numpy as np
import torch
from torch import nn

from hiermovie.config import ConfigError

# what a pickle of numpy arrays needs (numpy 2 moved numpy.core to numpy._core; protocol 2
# written by Python 3 spells bytes as _codecs.encode(str, "latin1"), a pure function)
_ALLOWED = {("_codecs", "encode"), ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict")}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201 (pickle's signature)
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        if module in ("collections", "_codecs"):
            return getattr(importlib.import_module(module), name)
        core = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
        return getattr(np if module == "numpy" else core, name)


def load_caffe2(path: str) -> dict[str, torch.Tensor]:
    """PySlowFast's parameter names -> tensors, from a Caffe2 blob pickle."""
    try:
        with open(path, "rb") as f:
            obj = _ArraysOnly(f, encoding="latin1").load()
    except FileNotFoundError:
        raise ConfigError(f"backbone.weights: {path}: file not found") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise ConfigError(f"backbone.weights: {path}: refused to load as a Caffe2 blob pickle "
                          f"({str(e)[:160]}); only numpy arrays are admitted") from None
    blobs = obj.get("blobs") if isinstance(obj, dict) else None
    if not isinstance(blobs, dict):
        raise ConfigError(f"backbone.weights: {path}: not a Caffe2 checkpoint (no 'blobs')")
    return {caffe2_to_pyslowfast(k): torch.from_numpy(np.ascontiguousarray(v))
            for k, v in blobs.items()
            if isinstance(v, np.ndarray) and v.dtype.kind in "fiub"  # numbers only
            and not k.endswith(("_momentum", "lr", "model_iter"))}


# Caffe2 -> PySlowFast, applied in order (each rule sees the previous ones' output); the fast
# pathway's names carry a `t_` prefix, its lateral connections `_subsample`
_C2_RULES = [(re.compile(a), b) for a, b in [
    (r"^t_pool1_subsample_bn_(.*)", r"s1_fuse.bn.\1"),
    (r"^t_pool1_subsample_(.*)", r"s1_fuse.conv_f2s.\1"),
    (r"^t_res(\d+)_\d+_branch2c_bn_subsample_bn_(.*)", r"s\1_fuse.bn.\2"),
    (r"^t_res(\d+)_\d+_branch2c_bn_subsample_(.*)", r"s\1_fuse.conv_f2s.\2"),
    (r"^(t_)?res(\d+)_(\d+)_branch(\d)([a-z])_(.*)", r"\1s\2.pathway?_res\3.branch\4.\5_\6"),
    (r"^(t_)?res_conv1_bn_(.*)", r"\1s1.pathway?_stem.bn.\2"),
    (r"^(t_)?conv1_(.*)", r"\1s1.pathway?_stem.conv.\2"),
    (r"^(t_)?res(\d+)_(\d+)_branch(\d)_(.*)", r"\1s\2.pathway?_res\3.branch\4_\5"),
    (r"^(t_)?res_conv1_(.*)", r"\1s1.pathway?_stem.conv.\2"),
    (r"^t_(s\d\.pathway)\?", r"\g<1>1"),
    (r"^(s\d\.pathway)\?", r"\g<1>0"),
    (r"^pred_(.*)", r"head.projection.\1"),
    (r"(.*)bn.b$", r"\1bn.bias"),
    (r"(.*)bn.s$", r"\1bn.weight"),
    (r"(.*)bn.rm$", r"\1bn.running_mean"),
    (r"(.*)bn.riv$", r"\1bn.running_var"),
    (r"(.*)[._]b$", r"\1.bias"),
    (r"(.*)[._]w$", r"\1.weight"),
]]


def caffe2_to_pyslowfast(name: str) -> str:
    for pattern, repl in _C2_RULES:
        name = pattern.sub(repl, name)
    return name


_STEM = re.compile(r"^s1\.pathway(\d)_stem\.(conv|bn)\.(\w+)$")
_RES = re.compile(r"^s(\d)\.pathway(\d)_res(\d+)\.branch(1|1_bn|2\.[abc]|2\.[abc]_bn)\.(\w+)$")
_FUSE = re.compile(r"^s(\d)_fuse\.(conv_f2s|bn)\.(\w+)$")
_PTV_RES = {"1": "branch1_conv", "1_bn": "branch1_norm"}
_PTV_RES |= {f"2.{x}": f"branch2.conv_{x}" for x in "abc"}
_PTV_RES |= {f"2.{x}_bn": f"branch2.norm_{x}" for x in "abc"}


def pyslowfast_to_ptv(state: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """PySlowFast's names (`s2.pathway0_res0.branch2.a_bn.weight`, `s1_fuse.conv_f2s.weight`)
    -> PyTorchVideo's (`blocks.1.multipathway_blocks.0.res_blocks.0.branch2.norm_a.weight`)
    for a ResNet-family model (Slow, I3D, SlowFast). Names no rule knows are kept, to be
    reported as unexpected."""
    blocks = list(net.blocks)
    two = hasattr(blocks[0], "multipathway_blocks")
    # PySlowFast's stage s -> the PyTorchVideo block holding it (I3D has a pool between s2, s3)
    stages = [0] + [i for i, b in enumerate(blocks) if i and (
        hasattr(b, "res_blocks") or hasattr(b, "multipathway_blocks"))]

    def where(stage: int, pathway: int) -> str:
        b = f"blocks.{stages[stage - 1]}."
        return b + f"multipathway_blocks.{pathway}." if two else b

    out = {}
    for k, v in state.items():
        if m := _STEM.match(k):
            k = where(1, int(m[1])) + f"{'conv' if m[2] == 'conv' else 'norm'}.{m[3]}"
        elif m := _RES.match(k):
            k = where(int(m[1]), int(m[2])) + f"res_blocks.{m[3]}.{_PTV_RES[m[4]]}.{m[5]}"
        elif (m := _FUSE.match(k)) and two:
            part = "conv_fast_to_slow" if m[2] == "conv_f2s" else "norm"
            k = f"blocks.{stages[int(m[1]) - 1]}.multipathway_fusion.{part}.{m[3]}"
        out[k] = v
    return out
