"""tiny3d: a small 3D CNN (tests, demos, pretrain-backbone); `tiny3d/W` sets its width."""

from __future__ import annotations

import torch
from torch import nn

from hiermovie.pipeline.backbone_config import BackboneConfig
from hiermovie.pipeline.backbones.registry import Backbone, register
from hiermovie.pipeline.backbones.weights import load_state_dict


class Tiny3D(Backbone):
    """Four strided 3D conv blocks; small enough for tests and for minutes-long pretraining."""

    input_size = 112
    channels_last = True

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        chans = [3, width, width * 2, width * 4, width * 4]
        layers: list[nn.Module] = []
        for i in range(4):
            k, s = ((1, 5, 5), (1, 2, 2)) if i == 0 else ((3, 3, 3), (1 + (i > 1), 2, 2))
            layers += [nn.Conv3d(chans[i], chans[i + 1], k, s, tuple(x // 2 for x in k),
                                 bias=False),
                       nn.BatchNorm3d(chans[i + 1]), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.dim = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@register("tiny3d")
def _tiny3d(cfg: BackboneConfig, arg: str) -> Backbone:
    model = Tiny3D(width=int(arg) if arg else 32)
    if cfg.weights:
        model.load_state_dict(load_state_dict(cfg.weights))
    return model
