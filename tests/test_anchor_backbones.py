"""The anchors' backbones (SlowFast, I3D, X3D, MViT) against PyTorchVideo's own forward, and
their checkpoints in each format's own layout: PyTorchVideo's, PySlowFast's `.pyth`, Caffe2
blob pickles."""

import pickle
import re

import numpy as np
import pytest
import torch

pytest.importorskip("pytorchvideo", reason="the pytorchvideo extra is not installed")

from hiermovie._compat import ensure_torchvision_importable  # noqa: E402
from hiermovie.config import ConfigError  # noqa: E402
from hiermovie.pipeline.backbones import BackboneConfig, encode, load_backbone  # noqa: E402

ensure_torchvision_importable()
from pytorchvideo.models import hub  # noqa: E402


def _frames(n, t, size, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, t, size, size, 3), dtype=np.uint8)


def _normalised(frames):  # as PyTorchVideo's tutorials prepare a clip for these models
    x = torch.from_numpy(frames).float().permute(0, 4, 1, 2, 3) / 255
    return (x - 0.45) / 0.225


def _features(name, frames, weights="", seed=0):
    cfg = BackboneConfig(name=name, weights=weights, input_size=frames.shape[2],
                         precision="fp32", seed=seed)
    return encode(load_backbone(cfg), frames, cfg)[:, 0]


def _no_classifier(net):
    head = net.blocks[-1]
    head.proj, head.activation = torch.nn.Identity(), None  # what the classifier reads
    return net.eval()


def _pack(x, alpha):  # PyTorchVideo's tutorial PackPathway
    return [x.index_select(2, torch.linspace(0, x.shape[2] - 1, x.shape[2] // alpha).long()), x]


# name -> (input size where PyTorchVideo's own head pools globally, its builder's extra kwargs)
REFERENCE = {
    "slowfast_r50": (64, {"head_pool_kernel_sizes": ((8, 2, 2), (32, 2, 2))}),
    "slowfast_r50_4x16": (64, {"head_pool_kernel_sizes": ((4, 2, 2), (32, 2, 2))}),
    "slowfast_r101": (64, {"head_pool_kernel_sizes": ((8, 2, 2), (32, 2, 2))}),
    "i3d_r50": (224, {}), "x3d_xs": (160, {}), "x3d_s": (160, {}), "x3d_m": (224, {}),
    "x3d_l": (312, {}),
}


def _clip_frames(tmp_path, name, size):
    """One segment of a generated clip, decoded as extract decodes it, at the recipe's frames."""
    from hiermovie.pipeline.backbone_config import RECIPES
    from hiermovie.pipeline.decode import decode_video
    from hiermovie.pipeline.plans import PlanConfig
    from tests.videos import make_video

    path = make_video(tmp_path / "clip.mp4", seconds=3.0, size=(72, 96))
    frames, rate = RECIPES[name]
    plan = PlanConfig(kind="sliding", window_s=3.0, stride_s=3.0, num_frames=frames,
                      sampling_rate=rate)
    return decode_video(str(path), plan, (size, size)).frames


# CI checks one name per code path; the others of a family (deeper, wider or another alpha:
# the same code) run in the full suite
SAME_PATH_AS_ANOTHER = {"slowfast_r50_4x16", "slowfast_r101", "x3d_m", "x3d_l"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow)
                                  if n in SAME_PATH_AS_ANOTHER else n for n in sorted(REFERENCE)])
def test_each_anchor_backbone_extracts_a_clip_as_pytorchvideos_forward(tmp_path, name):
    """Features of a generated clip through the extract's model worker equal PyTorchVideo's
    forward (its classifier removed; same weights, same input); SlowFast's are VidSitu's
    2304-d."""
    from pytorchvideo.models.slowfast import create_slowfast

    from hiermovie.pipeline.backbones.ptv import MODELS
    from hiermovie.pipeline.workers import ModelWorker

    size, kwargs = REFERENCE[name]
    frames = _clip_frames(tmp_path, name, size)
    worker = ModelWorker(BackboneConfig(name=name, input_size=size, precision="fp32"))
    ours = worker(frames)[0][:, 0]
    builder, base, _, alpha = MODELS[name]
    net = (create_slowfast(**base, **kwargs) if builder == "create_slowfast" else
           getattr(hub, builder)(pretrained=False, **kwargs))
    net.load_state_dict(load_backbone(BackboneConfig(name=name)).net.state_dict())
    x = _normalised(frames)
    with torch.no_grad():
        ref = _no_classifier(net)(_pack(x, alpha) if alpha else x).numpy()
    assert ours.shape == (len(frames), 2304 if alpha else 2048)
    # the worker folds BatchNorm into the convolutions: equal up to float rounding
    np.testing.assert_allclose(ours, ref, rtol=2e-3, atol=2e-3)


@pytest.mark.slow  # MViT-B at its full 16 x 224 px input: the full suite's
def test_mvit_features_are_pytorchvideos_patch_tokens():
    frames = _frames(1, 16, 224)
    m = load_backbone(BackboneConfig(name="mvit_base_16x4"))
    net = hub.mvit_base_16x4(pretrained=False)
    net.load_state_dict(m.net.state_dict(), strict=False)  # its classifier: not ours
    net.head = None
    with torch.no_grad():
        ref = net.eval()(_normalised(frames))[:, 1:].mean(1).numpy()
    ours = _features("mvit_base_16x4", frames)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


# PyTorchVideo's names -> PySlowFast's, written from PySlowFast's layout (resnet_helper,
# stem_helper, FuseFastToSlow): the inverse of what the loader does
def _to_pyslowfast(key, stages):
    m = re.match(r"blocks\.(\d+)\.(?:multipathway_blocks\.(\d)\.)?(.*)", key)
    block, path, rest = int(m[1]), int(m[2] or 0), m[3]
    s = stages.index(block) + 1
    if rest.startswith("multipathway_fusion."):
        part, param = rest.split(".")[1:]
        return f"s{s}_fuse.{'conv_f2s' if part == 'conv_fast_to_slow' else 'bn'}.{param}"
    if s == 1:
        part, param = rest.split(".")
        return f"s1.pathway{path}_stem.{'conv' if part == 'conv' else 'bn'}.{param}"
    j, rest = re.match(r"res_blocks\.(\d+)\.(.*)", rest).groups()
    rest = (rest.replace("branch1_conv", "branch1").replace("branch1_norm", "branch1_bn")
            .replace("conv_", "").replace("norm_a", "a_bn").replace("norm_b", "b_bn")
            .replace("norm_c", "c_bn"))
    return f"s{s}.pathway{path}_res{j}.{rest}"


def _pyslowfast_state(model):
    net = model.net
    stages = [0] + [i for i, b in enumerate(net.blocks) if i and hasattr(b, "res_blocks")
                    or i and hasattr(b, "multipathway_blocks")]
    last = f"blocks.{len(net.blocks) - 1}."
    state = {_to_pyslowfast(k, stages): v for k, v in net.state_dict().items()
             if not k.startswith(last) and not k.endswith("num_batches_tracked")}
    state["head.projection.weight"] = torch.zeros(97, 2304)  # fine-tuned elsewhere: ignored
    return state


def _to_caffe2(name):  # PySlowFast's names -> Caffe2's (as its c2 converter reads them)
    t = "t_" if ".pathway1" in name else ""
    name = name.replace(".pathway1", ".pathway0")
    for a, b in [(r"\.running_mean$", "_rm"), (r"\.running_var$", "_riv"),
                 (r"bn\.weight$", "bn_s"), (r"bn\.bias$", "bn_b"), (r"\.weight$", "_w"),
                 (r"\.bias$", "_b")]:
        name = re.sub(a, b, name)
    if m := re.match(r"s(\d)_fuse\.(conv_f2s|bn)_?(.*)", name):
        s, part, p = m.groups()
        stem = "t_pool1_subsample" if s == "1" else f"t_res{s}_2_branch2c_bn_subsample"
        return f"{stem}{'_bn' if part == 'bn' else ''}_{p}"
    name = re.sub(r"^s1\.pathway0_stem\.conv_", "conv1_", name)
    name = re.sub(r"^s1\.pathway0_stem\.bn_", "res_conv1_bn_", name)
    name = re.sub(r"^s(\d)\.pathway0_res(\d+)\.branch2\.([abc])_", r"res\1_\2_branch2\3_", name)
    name = re.sub(r"^s(\d)\.pathway0_res(\d+)\.branch1_", r"res\1_\2_branch1_", name)
    return t + name.replace("head.projection_", "pred_")


@pytest.mark.parametrize("name", ["slowfast_r50",  # I3D's own names: the full suite's
                                  pytest.param("i3d_r50", marks=pytest.mark.slow)])
def test_pyslowfast_pyth_and_caffe2_pkl_load_to_the_same_features(tmp_path, name):
    frames = _frames(1, 32 if name.startswith("slowfast") else 8, 64)
    original = load_backbone(BackboneConfig(name=name, seed=3))
    want = _features(name, frames, seed=3)
    state = _pyslowfast_state(original)
    pyth = tmp_path / "model.pyth"  # PySlowFast's checkpoint.save_checkpoint layout
    torch.save({"epoch": 196, "model_state": state, "optimizer_state": {"state": {}},
                "cfg": "MODEL:\n  ARCH: slowfast\n"}, pyth)
    np.testing.assert_array_equal(_features(name, frames, str(pyth), seed=9), want)

    blobs = {_to_caffe2(k): v.numpy() for k, v in state.items()}
    blobs["model_iter"] = np.array(196)
    blobs[next(iter(blobs)) + "_momentum"] = np.zeros(3, np.float32)
    pkl = tmp_path / "SLOWFAST_CU_8x8_R50.pkl"
    with open(pkl, "wb") as f:  # a Python-2-era pickle, as Detectron/Caffe2 wrote them
        pickle.dump({"blobs": blobs}, f, protocol=2)
    np.testing.assert_array_equal(_features(name, frames, str(pkl), seed=9), want)

    # PyTorchVideo's own checkpoint layout: its names under model_state
    ptv = tmp_path / "SLOWFAST_8x8_R50.pyth"
    torch.save({"model_state": original.net.state_dict()}, ptv)
    np.testing.assert_array_equal(_features(name, frames, str(ptv), seed=9), want)

    del state[next(k for k in state if "res0.branch2.a_bn.running_var" in k)]
    torch.save({"model_state": state}, pyth)
    with pytest.raises(ConfigError, match=r"does not fit .* 1 missing .*branch2\.norm_a"):
        _features(name, frames, str(pyth))


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/hiermovie-pwned-by-pkl",))


def test_a_caffe2_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    import os

    marker = "/tmp/hiermovie-pwned-by-pkl"
    if os.path.exists(marker):
        os.remove(marker)
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps({"blobs": {"conv1_w": _Payload()}}, protocol=2))
    with pytest.raises(ConfigError, match="refused .* posix.system|refused .*os.system"):
        load_backbone(BackboneConfig(name="slowfast_r50", weights=str(pkl)))
    assert not os.path.exists(marker)


def test_pyslowfast_names_for_a_family_without_a_converter_are_one_line(tmp_path):
    path = tmp_path / "x3d.pyth"
    torch.save({"model_state": {"s1.pathway0_stem.conv_xy.weight": torch.zeros(1)}}, path)
    with pytest.raises(ConfigError, match="converted for SlowFast and I3D only"):
        load_backbone(BackboneConfig(name="x3d_s", weights=str(path)))


def test_slowfast_extracts_a_clip_and_exports_vidsitus_5_by_2304_files(tmp_path, capsys):
    from hiermovie.feature_store import FeatureStore
    from hiermovie.workflows.cli import main
    from tests.videos import make_video

    make_video(tmp_path / "clips" / "v_abc_seg_1.mp4", seconds=10.0, size=(72, 96))
    store = str(tmp_path / "sf.zarr")
    assert main(["extract", "--input", str(tmp_path / "clips"), "--store", store,
                 "--backbone.name", "slowfast_r50", "--backbone.input_size", "64",
                 "--plan.kind", "vidsitu", "--progress", "false", "--num_cpus", "2",
                 "--model_workers", "1", "--backbone.batch_size", "1"]) == 0
    out = capsys.readouterr().out
    assert "32 frames 2 apart" in out  # SlowFast 8x8's recipe, chosen and printed
    s = FeatureStore(store)
    assert s.provenance.dim == 2304 and s.provenance.sampling["num_frames"] == 32
    assert main(["store", "export", store, "--to", str(tmp_path / "feats") + "/"]) == 0
    feats = np.load(tmp_path / "feats" / "v_abc_seg_1_feats.npy")
    assert feats.shape == (5, 2304) and np.isfinite(feats).all()


@pytest.mark.parametrize("name, t, folds", [("slowfast_r50", 32, 106), ("x3d_xs", 4, 56)])
def test_pytorchvideos_conv_norm_pairs_fold_without_changing_features(name, t, folds):
    from hiermovie.pipeline.backbones import fold_batchnorm

    cfg = BackboneConfig(name=name, input_size=64, precision="fp32")
    models = [load_backbone(cfg) for _ in range(2)]
    for m in models:  # BatchNorm statistics that matter
        g = torch.Generator().manual_seed(0)
        for bn in (x for x in m.modules() if isinstance(x, torch.nn.BatchNorm3d)):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
    assert fold_batchnorm(models[1]) == folds
    x = _frames(1, t, 64)
    a, b = encode(models[0], x, cfg), encode(models[1], x, cfg)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(a).max())
