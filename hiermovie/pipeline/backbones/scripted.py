"""torchscript: a TorchScript (.pt) or torch.export (.pt2) file given as `weights`."""

from __future__ import annotations

import torch

from hiermovie.config import ConfigError
from hiermovie.pipeline.backbone_config import BackboneConfig
from hiermovie.pipeline.backbones.registry import Backbone, register


@register("torchscript")
def _torchscript(cfg: BackboneConfig, arg: str) -> Backbone:
    path = cfg.weights or arg
    if not path:
        raise ConfigError("backbone.weights: torchscript needs the model file")
    return ScriptedBackbone(path)


class ScriptedBackbone(Backbone):
    """A TorchScript (.pt) or torch.export (.pt2) file mapping clips to [B,D,t,h,w] or [B,D]."""

    def __init__(self, path: str, probe_frames: int = 8) -> None:
        super().__init__()
        if path.endswith(".pt2"):
            self.inner = torch.export.load(path).module()
        else:
            self.inner = torch.jit.load(path, map_location="cpu")
        # the file does not say its width: one forward on a blank clip measures it (0 when the
        # model refuses that shape; extract's describe() measures it on the run's own shape)
        blank = torch.zeros(1, 3, probe_frames, self.input_size, self.input_size)
        try:
            with torch.inference_mode():
                self.dim = int(self(blank).shape[1])
        except RuntimeError:
            self.dim = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        return y.view(*y.shape, 1, 1, 1) if y.dim() == 2 else y
