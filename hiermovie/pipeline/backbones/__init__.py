"""Frozen video backbones, by name.

A backbone maps normalised clips [B, 3, T, H, W] to a feature map [B, D, t, h, w]; `encode`
pools that map to K = kt*kh*kw tokens per segment. Names:

    tiny3d                   a small 3D CNN (tests, demos, pretrain-backbone)
    slow_r50                 Slow-only ResNet-50 in PySlowFast's layout (rho-BYOL, CVRL ...)
    torchvision/<model>      r3d_18, mc3_18, r2plus1d_18, s3d, mvit_v1_b, mvit_v2_s, swin3d_t/s/b
    hf/<hub id or dir>       transformers video models (VideoMAE, TimeSformer, ViViT, V-JEPA 2 ...)
    hf-image/<hub id or dir> per-frame image towers (CLIP, SigLIP, DINOv2), pooled per segment
    torchscript              a TorchScript or torch.export file given as `weights`
    trained/<dir or file>    the output of `hiermovie pretrain-backbone` (architecture and
                             training provenance are read from the file)
    zoo/<name>               weights this package ships, made by its own pretrain-backbone
                             (hiermovie/zoo/README.md: the command and what each measures)

Weights come from `weights` (a local file or directory, or a hub id); empty means random
initialisation from `seed`. Checkpoints are loaded without running pickled code.

Each name's module is imported on first use (`registry.FAMILIES`, transformers-style), so
asking for tiny3d never imports transformers.
"""


from hiermovie.pipeline.backbone_config import BackboneConfig
from hiermovie.pipeline.backbones.inference import (
    encode,
    fold_batchnorm,
    pool_tokens,
    precision_dtype,
    preprocess,
)
from hiermovie.pipeline.backbones.registry import REGISTRY, Backbone, load_backbone, register
from hiermovie.pipeline.backbones.weights import (
    ARCHITECTURE_KEY,
    ORIGIN_KEY,
    fingerprint,
    load_state_dict,
    weights_origin,
)

__all__ = ["ARCHITECTURE_KEY", "ORIGIN_KEY", "REGISTRY", "Backbone", "BackboneConfig", "encode",
           "fingerprint", "fold_batchnorm", "load_backbone", "load_state_dict", "pool_tokens",
           "precision_dtype", "preprocess", "register", "weights_origin"]
