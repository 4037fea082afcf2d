"""Every backbone family builds from local files (random weights) and gives [N, K, D]."""

import numpy as np
import pytest
import torch

from hiermovie.pipeline.backbones import (
    BackboneConfig,
    encode,
    fingerprint,
    fold_batchnorm,
    load_backbone,
)
from hiermovie.pipeline.workers import ModelWorker


def _frames(n, t, size):
    return np.random.default_rng(0).integers(0, 255, (n, t, size, size, 3), dtype=np.uint8)


def test_tiny3d_and_bf16_close_to_fp32():
    m = load_backbone(BackboneConfig(name="tiny3d/8"))
    x = _frames(3, 8, 64)
    f32 = encode(m, x, BackboneConfig(precision="fp32"))
    bf16 = encode(m, x, BackboneConfig(precision="bf16"))
    assert f32.shape == (3, 1, 32)
    cos = (f32 * bf16).sum(-1) / np.linalg.norm(f32, axis=-1) / np.linalg.norm(bf16, axis=-1)
    assert cos.min() > 0.99
    assert fingerprint(m) == fingerprint(load_backbone(BackboneConfig(name="tiny3d/8")))
    assert fingerprint(m) != fingerprint(load_backbone(BackboneConfig(name="tiny3d/8", seed=1)))


def _random_bn_stats(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            for t, lo, hi in ((m.running_mean, -0.5, 0.5), (m.running_var, 0.5, 2.0),
                              (m.weight.data, 0.5, 1.5), (m.bias.data, -0.2, 0.2)):
                t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)
    return model


@pytest.mark.parametrize("name, folds", [("tiny3d/8", 4), ("slow_r50", 52)])
def test_fold_batchnorm_keeps_features(name, folds):
    cfg = BackboneConfig(name=name, precision="fp32", batch_size=2)
    plain = _random_bn_stats(load_backbone(cfg))
    folded = _random_bn_stats(load_backbone(cfg))
    assert fold_batchnorm(folded) == folds  # slow_r50: all but the stem's conv/bn pair
    x = _frames(2, 8, 64)
    a, b = encode(plain, x, cfg), encode(folded, x, cfg)
    assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()
    assert not np.array_equal(a, encode(load_backbone(cfg), x, cfg))  # the stats mattered


def test_fold_batchnorm_leaves_uncertain_pairs():
    class Custom(torch.nn.Sequential):  # its own forward: the children's order means nothing
        def forward(self, x):
            return self[0](x)
    conv, bn = (lambda: torch.nn.Conv3d(3, 3, 1)), (lambda: torch.nn.BatchNorm3d(3))
    model = torch.nn.Sequential(Custom(conv(), bn()), torch.nn.Sequential(conv(), bn()),
                                torch.nn.ModuleDict({"conv": conv(), "bn": bn()}))
    training = torch.nn.Sequential(conv(), bn())
    assert fold_batchnorm(model.eval()) == 1
    assert isinstance(model[1][1], torch.nn.Identity)
    assert fold_batchnorm(training) == 0  # BatchNorm still learning: never folded


def test_model_worker_folds_but_records_the_loaded_weights():
    cfg = BackboneConfig(name="tiny3d/8", precision="fp32")
    w = ModelWorker(cfg, "cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in w.model.modules())
    assert w.describe(8).fingerprint == fingerprint(load_backbone(cfg))


def test_token_grid():
    m = load_backbone(BackboneConfig(name="tiny3d/8"))
    f = encode(m, _frames(2, 8, 64), BackboneConfig(tokens=[2, 2, 2], precision="fp32"))
    assert f.shape == (2, 8, 32)


def test_slow_r50_pyslowfast_layout(tmp_path):
    m = load_backbone(BackboneConfig(name="slow_r50"))
    assert m.dim == 2048
    state = {f"backbone.{k}": v for k, v in m.state_dict().items()}
    state["head.projection.weight"] = torch.zeros(2, 2048)  # ignored
    path = tmp_path / "byol.pyth"
    torch.save({"model_state": state, "epoch": 200}, path)
    loaded = load_backbone(BackboneConfig(name="slow_r50", weights=str(path), seed=5))
    assert fingerprint(loaded) == fingerprint(m)
    torch.save({"model_state": {"s1.x": torch.zeros(1)}}, tmp_path / "bad.pyth")
    with pytest.raises(ValueError, match="not a PySlowFast Slow-R50"):
        load_backbone(BackboneConfig(name="slow_r50", weights=str(tmp_path / "bad.pyth")))


def test_torchscript_file(tmp_path):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv3d(3, 6, 3, stride=2)

        def forward(self, x):
            return self.conv(x)
    path = tmp_path / "net.pt"
    torch.jit.script(Net()).save(str(path))
    m = load_backbone(BackboneConfig(name="torchscript", weights=str(path)))
    assert m.dim == 6  # measured when loaded, before any segment is encoded
    assert encode(m, _frames(0, 8, 32), BackboneConfig(precision="fp32")).shape == (0, 1, 6)
    assert encode(m, _frames(2, 8, 32), BackboneConfig(precision="fp32")).shape == (2, 1, 6)


def test_hf_video_and_image_models_from_local_folders(tmp_path):
    from transformers import Dinov2Config, Dinov2Model, VideoMAEConfig, VideoMAEModel

    VideoMAEModel(VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2,
                                 hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=48)).save_pretrained(tmp_path / "vmae")
    m = load_backbone(BackboneConfig(name=f"hf/{tmp_path / 'vmae'}"))
    assert (m.input_size, m.num_frames, m.dim) == (32, 4, 24)
    f = encode(m, _frames(2, 4, 32), BackboneConfig(tokens=[2, 2, 2], precision="fp32"))
    assert f.shape == (2, 8, 24)
    Dinov2Model(Dinov2Config(image_size=28, patch_size=14, hidden_size=16, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=32)).save_pretrained(
        tmp_path / "dino")
    m = load_backbone(BackboneConfig(name=f"hf-image/{tmp_path / 'dino'}"))
    f = encode(m, _frames(2, 6, 28), BackboneConfig(tokens=[3, 1, 1], precision="fp32"))
    assert f.shape == (2, 3, 16)


def test_torchvision_video_models():
    pytest.importorskip("torchvision", reason="torchvision is an optional extra")
    m = load_backbone(BackboneConfig(name="torchvision/r3d_18"))
    assert encode(m, _frames(1, 8, 112), BackboneConfig(precision="fp32")).shape == (1, 1, 512)
    with pytest.raises(ValueError, match="unknown torchvision video model"):
        load_backbone(BackboneConfig(name="torchvision/resnet50"))


def test_unknown_backbone():
    with pytest.raises(ValueError, match="unknown backbone 'nope'"):
        load_backbone(BackboneConfig(name="nope"))


def test_load_backbone_seeds_its_own_init_and_leaves_the_callers_rng_alone():
    from hiermovie.pipeline.backbone_config import BackboneConfig
    from hiermovie.pipeline.backbones import load_backbone

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = load_backbone(BackboneConfig(name="tiny3d", seed=5))
    assert torch.equal(torch.rand(3), expected)  # the caller's stream did not move
    b = load_backbone(BackboneConfig(name="tiny3d", seed=5))
    c = load_backbone(BackboneConfig(name="tiny3d", seed=6))
    sa, sb, sc = (list(m.state_dict().values()) for m in (a, b, c))
    assert all(torch.equal(x, y) for x, y in zip(sa, sb, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(sa, sc, strict=True))


def test_the_zoo_ships_the_demos_level_1_with_its_provenance():
    """`zoo/<name>` loads the shipped weights (RGB pathway only) with the command that made
    them; the demo's default level 1 is one of them."""
    from hiermovie.pipeline.backbones import BackboneConfig, load_backbone
    from hiermovie.workflows.presets import LEVEL1_RECIPE, LEVEL1_ZOO

    model = load_backbone(BackboneConfig(name=LEVEL1_ZOO))
    assert model.origin["objective"] == LEVEL1_RECIPE["objective"]
    assert model.origin["data"].startswith("kinetics:") and "level1_share.py" in \
        model.origin["command"]
    assert model.input_size == 64 and not any("motion" in k for k in model.state_dict())
    x = torch.zeros(1, 3, 8, 64, 64)
    assert torch.isfinite(model(x)).all()
