"""Make a CUDA-only torchvision build importable beside a CPU torch.

PyPI's torchvision for torch 2.13 links CUDA libraries; beside the CPU torch its C++ ops fail to
register and `import torchvision` raises "operator torchvision::nms does not exist", which in
turn breaks every transformers model import. Defining the two operator schemas first makes it
load (the video models and transforms work; its C++ detection ops do not). Call this before
importing transformers or torchvision.
"""

from __future__ import annotations

import importlib.util
import sys

_done = False


def ensure_torchvision_importable() -> None:
    global _done
    if _done or importlib.util.find_spec("torchvision") is None:
        _done = True
        return
    _done = True
    try:
        import torchvision  # noqa: F401
    except RuntimeError as e:
        if "torchvision::nms" not in str(e):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        import torch

        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        sys.modules[__name__].__dict__["_keep_library_alive"] = lib
        import torchvision  # noqa: F401,F811
