"""Video -> segment plan -> frames -> backbone -> tokens: everything before the store.

- `plans`: `PlanConfig` and `plan_segments` (which spans become segments, which frames each
  reads); `containers` and `decode`: `decode_video`, `DecodeSpec` (decord, streamed in parts);
- `backbone_config` (torch-free: `BackboneConfig`, `check_backbone`, the recipes) and
  `backbones`: the registry, `load_backbone`, `encode`;
- `workers`: `ModelWorker`, the model side of extract, and its `BackboneInfo`;
- `clips` and `ssl`: training clips and the self-supervised objectives of pretrain-backbone
  (`ClipConfig`, `MultiClipDataset`, `ClipLearner`).
"""

from hiermovie.lazy import lazy_exports

_WHERE = {"PlanConfig": "plans", "plan_segments": "plans", "decode_video": "decode",
          "DecodeSpec": "decode", "BackboneConfig": "backbone_config",
          "check_backbone": "backbone_config", "load_backbone": "backbones",
          "encode": "backbones", "ModelWorker": "workers", "BackboneInfo": "workers",
          "encode_video": "workers",
          "ClipConfig": "clips", "MultiClipDataset": "clips", "ClipLearner": "ssl"}
__getattr__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
