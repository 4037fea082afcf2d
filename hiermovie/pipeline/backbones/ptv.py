"""The anchors' backbones from PyTorchVideo's definitions (the `pytorchvideo` extra): SlowFast,
I3D, X3D and MViT, as the model zoos behind PySlowFast and VidSitu trained them.

Features are what each model's classifier reads, before its last linear layer, kept as a map so
tokens can be pooled from it:
- SlowFast: each pathway's last stage, the fast one averaged over each slow frame's alpha
  frames, concatenated on channels (VidSitu's extractor pools each pathway and concatenates:
  2048 + 256 = 2304 for R50; the same numbers for one token);
- I3D: the last stage (2048);
- X3D: the head's projection to 432 channels; after pooling, its 2048-d post-projection
  (`after_pool`), so one token equals X3D's pooled head feature;
- MViT: the last block's patch tokens after the final norm (768), the class token dropped.

Weights: PyTorchVideo's own checkpoints (`.pyth`, a `model_state` in its names), PySlowFast's
`.pyth` (its names, converted for the ResNet family: SlowFast, I3D) and PySlowFast/VidSitu
Caffe2 `.pkl` blobs (`caffe2.py`). The classifier's weights are never needed: a checkpoint
fine-tuned with another number of classes loads.
"""

from __future__ import annotations

import torch
from torch import nn

from hiermovie._compat import ensure_torchvision_importable
from hiermovie.config import ConfigError
from hiermovie.pipeline.backbone_config import RECIPES, BackboneConfig
from hiermovie.pipeline.backbones.caffe2 import load_caffe2, pyslowfast_to_ptv
from hiermovie.pipeline.backbones.registry import Backbone, register
from hiermovie.pipeline.backbones.weights import load_state_dict

SLOWFAST_MEAN, SLOWFAST_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)
# name -> (PyTorchVideo hub builder, its kwargs, crop size, SlowFast's alpha or 0)
MODELS: dict[str, tuple[str, dict, int, int]] = {
    "slowfast_r50": ("slowfast_r50", {}, 256, 4),
    # PySlowFast's SLOWFAST_4x16_R50: alpha 8, fusion kernel 5 (the hub builds 8x8 only)
    "slowfast_r50_4x16": ("create_slowfast", {
        "model_depth": 50, "slowfast_fusion_conv_kernel_size": (5, 1, 1),
        "slowfast_fusion_conv_stride": (8, 1, 1)}, 256, 8),
    "slowfast_r101": ("slowfast_r101", {}, 256, 4),
    "i3d_r50": ("i3d_r50", {}, 224, 0),
    "x3d_xs": ("x3d_xs", {}, 182, 0),
    "x3d_s": ("x3d_s", {}, 182, 0),
    "x3d_m": ("x3d_m", {}, 256, 0),
    "x3d_l": ("x3d_l", {}, 356, 0),
    "mvit_base_16x4": ("mvit_base_16x4", {}, 224, 0),
}
assert set(MODELS) == set(RECIPES)


class PyTorchVideoModel(Backbone):
    mean, std = SLOWFAST_MEAN, SLOWFAST_STD

    def __init__(self, name: str) -> None:
        super().__init__()
        ensure_torchvision_importable()  # pytorchvideo's hub imports torchvision.ops
        try:
            from pytorchvideo.models import hub, slowfast
        except ImportError:
            raise ConfigError(f"backbone.name: {name} needs PyTorchVideo's definitions: "
                              "pip install 'hiermovie[pytorchvideo]'") from None
        builder, kwargs, self.input_size, self.alpha = MODELS[name]
        self.name = name
        if builder == "create_slowfast":
            self.net = slowfast.create_slowfast(**kwargs)
        else:
            self.net = getattr(hub, builder)(pretrained=False, **kwargs)
        if name.startswith("mvit"):
            self.net.head = None  # the class token's classifier: features are the patch tokens
        self.family = name.split("_")[0]
        self.num_frames = RECIPES[name][0] if self.family == "mvit" else None
        self.dim = {"slowfast": 2048 + 256, "i3d": 2048, "x3d": 2048, "mvit": 768}[self.family]

    def head_keys(self) -> set[str]:
        """The classifier's parameters, never needed for features."""
        if self.family == "mvit":
            return set()  # its head is gone (see __init__)
        head = f"blocks.{len(self.net.blocks) - 1}."
        keep = ("blocks.5.pool.pre_", "blocks.5.pool.post_") if self.family == "x3d" else ()
        return {k for k in self.net.state_dict()
                if k.startswith(head) and not k.startswith(keep)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = self.net.blocks
        if self.family == "slowfast":
            # PySlowFast's pack_pathway_output: every alpha-th frame (by linspace) for slow
            slow = x.index_select(2, torch.linspace(0, x.shape[2] - 1, x.shape[2] // self.alpha,
                                                    device=x.device).long())
            y = [slow, x]
            for block in blocks[:-2]:
                y = block(y)
            fast = nn.functional.adaptive_avg_pool3d(y[1], y[0].shape[2:])
            return torch.cat([y[0], fast], dim=1)
        if self.family == "mvit":  # no head: its forward returns the normed tokens
            x = self.net(x)[:, 1:]
            t = self.net.cls_positional_encoding.patch_embed_shape[0]
            side = round((x.shape[1] / t) ** 0.5)  # inputs are square crops
            return x.transpose(1, 2).reshape(x.shape[0], -1, t, side, side)
        for block in blocks[:-1]:
            x = block(x)
        if self.family == "x3d":
            p = blocks[-1].pool
            x = p.pre_act(p.pre_norm(p.pre_conv(x)))
        return x

    def after_pool(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.family != "x3d":
            return tokens
        p = self.net.blocks[-1].pool  # a 1x1x1 conv: a linear map of each pooled token
        w = p.post_conv.weight.flatten(1)
        return p.post_act(tokens @ w.to(tokens.dtype).T)


def _build(cfg: BackboneConfig, arg: str) -> Backbone:
    model = PyTorchVideoModel(cfg.name)
    if cfg.weights:
        load_weights(model, cfg.weights)
    return model


for _name in MODELS:
    register(_name)(_build)


def load_weights(model: PyTorchVideoModel, path: str) -> None:
    """A PyTorchVideo, PySlowFast or Caffe2 checkpoint into `model`; one line naming the
    missing or unexpected parameters when it does not fit."""
    state = load_caffe2(path) if path.endswith(".pkl") else load_state_dict(path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if not any(k.startswith(("blocks.", "patch_embed.")) for k in state):
        if model.family not in ("slowfast", "i3d"):
            raise ConfigError(f"backbone.weights: {path}: not PyTorchVideo's parameter names; "
                              f"PySlowFast's are converted for SlowFast and I3D only")
        state = pyslowfast_to_ptv(state, model.net)
    head = model.head_keys()
    ours = {k: v for k, v in model.net.state_dict().items() if k not in head}
    theirs = {k: v for k, v in state.items() if k not in head
              and not k.startswith(("head.", "head_"))}
    missing = [k for k in ours if k not in theirs and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in theirs if k not in ours]
    if missing or unexpected:
        raise ConfigError(f"backbone.weights: {path}: does not fit {model.name}: "
                          f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} "
                          f"unexpected (e.g. {unexpected[:2]})")
    wrong = [k for k in theirs if tuple(theirs[k].shape) != tuple(ours[k].shape)]
    if wrong:
        k = wrong[0]
        raise ConfigError(f"backbone.weights: {path}: does not fit {model.name}: {len(wrong)} "
                          f"parameters of another shape (e.g. {k}: {tuple(theirs[k].shape)} "
                          f"for {tuple(ours[k].shape)})")
    model.net.load_state_dict({k: torch.as_tensor(v) for k, v in theirs.items()}, strict=False)
