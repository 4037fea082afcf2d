"""Slow-only ResNet-50 in PySlowFast's layout (`slow_r50`), the paper's backbone family.

Parameter names match PySlowFast checkpoints (`s1.pathway0_stem.conv.weight`,
`s2.pathway0_res0.branch2.a.weight`, ...), so the published rho-BYOL / CVRL Slow-R50 8x8
Kinetics-400 checkpoints load directly (their projection heads are ignored). 2048-d output.
"""

from __future__ import annotations

import torch
from torch import nn

from hiermovie.config import ConfigError
from hiermovie.pipeline.backbone_config import BackboneConfig
from hiermovie.pipeline.backbones.registry import Backbone, register
from hiermovie.pipeline.backbones.weights import load_state_dict

# (blocks, inner width, output width, spatial stride, temporal kernel of branch2.a)
SLOW_R50 = ((3, 64, 256, 1, 1), (4, 128, 512, 2, 1), (6, 256, 1024, 2, 3),
            (3, 512, 2048, 2, 3))


def _bn(c: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(c, eps=1e-5, momentum=0.1)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, inner: int, cout: int, stride: int, tk: int) -> None:
        super().__init__()
        if cin != cout or stride != 1:
            self.branch1 = nn.Conv3d(cin, cout, 1, (1, stride, stride), bias=False)
            self.branch1_bn = _bn(cout)
        self.branch2 = nn.Module()
        b = self.branch2
        b.a = nn.Conv3d(cin, inner, (tk, 1, 1), padding=(tk // 2, 0, 0), bias=False)
        b.a_bn = _bn(inner)
        b.b = nn.Conv3d(inner, inner, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)
        b.b_bn = _bn(inner)
        b.c = nn.Conv3d(inner, cout, 1, bias=False)
        b.c_bn = _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.branch2
        y = torch.relu(b.a_bn(b.a(x)))
        y = torch.relu(b.b_bn(b.b(y)))
        y = b.c_bn(b.c(y))
        skip = self.branch1_bn(self.branch1(x)) if hasattr(self, "branch1") else x
        return torch.relu(skip + y)


class SlowR50(Backbone):
    input_size = 224
    channels_last = True

    def __init__(self) -> None:
        super().__init__()
        self.s1 = nn.Module()
        self.s1.pathway0_stem = nn.Module()
        stem = self.s1.pathway0_stem
        stem.conv = nn.Conv3d(3, 64, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        stem.bn = _bn(64)
        stem.pool_layer = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        cin = 64
        for i, (blocks, inner, cout, stride, tk) in enumerate(SLOW_R50, start=2):
            stage = nn.Module()
            for j in range(blocks):
                stage.add_module(f"pathway0_res{j}", Bottleneck(cin, inner, cout,
                                                                stride if j == 0 else 1, tk))
                cin = cout
            self.add_module(f"s{i}", stage)
        self.dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.s1.pathway0_stem
        x = stem.pool_layer(torch.relu(stem.bn(stem.conv(x))))
        for i in range(2, 6):
            for block in getattr(self, f"s{i}").children():
                x = block(x)
        return x


@register("slow_r50")
def _slow_r50(cfg: BackboneConfig, arg: str) -> Backbone:
    model = SlowR50()
    if cfg.weights:
        state = {k.removeprefix("module.").removeprefix("backbone."): v
                 for k, v in load_state_dict(cfg.weights).items()}
        ours = model.state_dict()
        missing = [k for k in ours if k not in state and not k.endswith("num_batches_tracked")]
        if missing:
            raise ConfigError(f"backbone.weights: {cfg.weights}: not a PySlowFast Slow-R50 "
                             f"checkpoint ({len(missing)} parameters missing, e.g. {missing[0]})")
        model.load_state_dict({k: state[k] for k in ours if k in state}, strict=False)
    return model
