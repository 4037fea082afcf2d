"""torchvision video models as frozen backbones (`torchvision/<name>`), when installed."""

from __future__ import annotations

import torch

from hiermovie._compat import ensure_torchvision_importable
from hiermovie.config import ConfigError
from hiermovie.pipeline.backbone_config import BackboneConfig
from hiermovie.pipeline.backbones.registry import Backbone, register
from hiermovie.pipeline.backbones.weights import load_state_dict

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
SIZES = {"r3d_18": 112, "mc3_18": 112, "r2plus1d_18": 112, "s3d": 224, "mvit_v1_b": 224,
         "mvit_v2_s": 224, "swin3d_t": 224, "swin3d_s": 224, "swin3d_b": 224}


class TorchvisionVideo(Backbone):
    mean, std = KINETICS_MEAN, KINETICS_STD

    def __init__(self, name: str) -> None:
        super().__init__()
        ensure_torchvision_importable()
        from torchvision.models import video

        if name not in SIZES:
            raise ConfigError(f"backbone.name: unknown torchvision video model {name!r} "
                             f"(known: {', '.join(SIZES)})")
        self.name = name
        self.net = getattr(video, name)(weights=None)
        self.input_size = SIZES[name]
        self.num_frames = 16 if name.startswith("mvit") else None
        self.channels_last = name in ("r3d_18", "mc3_18", "r2plus1d_18", "s3d")
        self.dim = {"s3d": 1024, "mvit_v1_b": 768, "mvit_v2_s": 768, "swin3d_t": 768,
                    "swin3d_s": 768, "swin3d_b": 1024}.get(name, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        if self.name in ("r3d_18", "mc3_18", "r2plus1d_18"):
            x = n.stem(x)
            return n.layer4(n.layer3(n.layer2(n.layer1(x))))
        if self.name == "s3d":
            return n.features(x)
        if self.name.startswith("swin3d"):
            x = n.norm(n.features(n.pos_drop(n.patch_embed(x))))  # [B, t, h, w, C]
            return x.permute(0, 4, 1, 2, 3)
        # MViT: patchify, add positions, run the blocks, drop the class token
        x = n.conv_proj(x)
        thw = tuple(x.shape[2:])
        x = n.pos_encoding(x.flatten(2).transpose(1, 2))
        for block in n.blocks:
            x, thw = block(x, thw)
        x = n.norm(x)[:, 1:]
        return x.transpose(1, 2).reshape(x.shape[0], -1, *thw)


@register("torchvision")
def _torchvision(cfg: BackboneConfig, arg: str) -> Backbone:
    model = TorchvisionVideo(arg)
    if cfg.weights:  # a torchvision state dict saved locally (no downloads at run time)
        state = load_state_dict(cfg.weights)
        missing, _ = model.net.load_state_dict(state, strict=False)
        if missing:
            raise ConfigError(f"backbone.weights: {cfg.weights}: missing {len(missing)} "
                             f"parameters for {arg} (e.g. {missing[0]})")
    return model


