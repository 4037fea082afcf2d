import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from hiermovie.config import from_dict
from hiermovie.datasets.video_io import write_video
from hiermovie.pipeline.backbones import BackboneConfig, load_backbone
from hiermovie.pipeline.clips import ClipConfig, MultiClipDataset, clip_augment
from hiermovie.pipeline.ssl import byol_loss, info_nce
from hiermovie.workflows.checkpoints import load_checkpoint
from hiermovie.workflows.pretrain_backbone import PretrainBackboneConfig, run_pretrain_backbone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FPS = 30


def _coded_video(path, video: int, seconds: float = 4.0):
    """Solid frames whose red level names the video and whose green level is the frame index."""
    frames = (np.full((64, 64, 3), (30 * video + 20, 2 * i, 0), np.uint8)
              for i in range(int(seconds * FPS)))
    write_video(path, frames, FPS)
    return str(path)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("ssl")
    return [_coded_video(d / f"v{v}.mp4", v) for v in range(6)]


def _cfg(videos, out, **kw):
    base = {"input": str(out.parent / "videos.csv"), "out": str(out),
            "steps": 6, "batch_size": 4, "workers": 0, "progress": False, "warmup": 2,
            "ckpt_every": 3, "hidden": 32, "proj_dim": 16,
            "clip": {"num_frames": 4, "sampling_rate": 2}}
    lines = ["video_id,path"] + [f"v{i},{p}" for i, p in enumerate(videos)]
    (out.parent / "videos.csv").write_text("\n".join(lines) + "\n")
    backbone = {"input_size": 32, **kw.pop("backbone", {})}
    return from_dict(PretrainBackboneConfig, {**base, "backbone": backbone, **kw})


def _losses(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_augmentation_is_the_same_for_every_frame_of_a_clip():
    aug = clip_augment(32, ClipConfig(jitter=1.0, grayscale=0.5, blur=1.0))
    from torchvision import tv_tensors

    frame = torch.randint(0, 255, (1, 3, 48, 48), dtype=torch.uint8)
    outs = [aug(tv_tensors.Video(frame.repeat(8, 1, 1, 1))) for _ in range(4)]
    for y in outs:
        assert y.shape == (8, 3, 32, 32)
        assert torch.equal(y, y[:1].expand_as(y))  # one set of parameters per clip
    assert not all(torch.equal(outs[0], y) for y in outs[1:])  # but new ones per call


def test_clips_of_a_sample_come_from_one_video_at_different_times(videos):
    cfg = ClipConfig(clips=3, num_frames=4, sampling_rate=2, jitter=0, grayscale=0, blur=0,
                     min_crop_area=1.0)
    ds = MultiClipDataset(videos, cfg, size=32, seed=1)
    for i in range(12):
        s = ds[i]
        clips = s["clips"].float()  # [n, T, 3, H, W]
        red = clips[:, :, 0].mean(dim=(1, 2, 3))
        assert torch.allclose(red, torch.full_like(red, 30 * s["video"] + 20), atol=4)
        assert len(np.unique(s["starts"])) == 3
        green = clips[:, 0, 1].mean(dim=(1, 2)).numpy()  # first frame of each clip
        np.testing.assert_allclose(green, 2 * np.floor(s["starts"] * FPS + 1e-6), atol=4)
    # sample i is a pure function of (seed, i): workers and resumed runs agree
    assert torch.equal(ds[5]["clips"], MultiClipDataset(videos, cfg, 32, seed=1)[5]["clips"])


def test_info_nce_counts_repeated_videos_as_positives():
    z = torch.randn(4, 2, 8)
    aligned = z[:, :1].expand(4, 2, 8)
    per_sample = torch.arange(4)[:, None].expand(4, 2)
    assert info_nce(aligned, per_sample, 0.1) < info_nce(z, per_sample, 0.1)
    # samples 0 and 1 are the same video: their clips must not be pushed apart
    same = torch.cat([z[:1], z[:1]]).expand(2, 2, 8)
    both = torch.cat([same, z[2:]])
    one_video = torch.tensor([0, 0, 2, 3])[:, None].expand(4, 2)
    assert info_nce(both, one_video, 0.1) < info_nce(both, per_sample, 0.1)
    # a static negative (group -1) identical to its anchor raises the loss, positive to none
    static = torch.cat([aligned, aligned[:, :1]], dim=1)
    groups = torch.cat([per_sample, torch.full((4, 1), -1)], dim=1)
    assert info_nce(static, groups, 0.1) > info_nce(aligned, per_sample, 0.1)
    assert byol_loss(aligned, aligned).item() == pytest.approx(0, abs=1e-6)


def test_loss_decreases_on_a_tiny_run(videos, tmp_path):
    out = tmp_path / "run"
    run_pretrain_backbone(_cfg(videos, out, steps=40, lr=3e-3, ckpt_every=40))
    losses = _losses(out)
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:8])


@pytest.mark.parametrize("objective", ["cvrl", "rho_byol"])
def test_resume_is_exact(videos, tmp_path, objective):
    full, part = tmp_path / "full", tmp_path / "part"
    kw = {"objective": objective, "clip": {"clips": 3, "num_frames": 4, "sampling_rate": 2}}
    run_pretrain_backbone(_cfg(videos, full, **kw))
    run_pretrain_backbone(_cfg(videos, part, stop_at=3, **kw))
    assert not (part / "backbone.safetensors").exists()  # an interrupted run publishes nothing
    run_pretrain_backbone(_cfg(videos, part, resume=True, **kw))
    assert _losses(part) == _losses(full)
    from safetensors.torch import load_file

    a, b = load_file(part / "backbone.safetensors"), load_file(full / "backbone.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    if objective == "rho_byol":  # the momentum target moved, and is not the online network
        state = load_checkpoint(full / "checkpoint.pt")["model"]
        online, target = state["backbone.body.0.weight"], state["target.backbone.body.0.weight"]
        assert not torch.equal(online, target)


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["cvrl", "modist"])
def test_ddp_two_processes(videos, tmp_path, objective):
    out = tmp_path / "ddp"
    cfg = _cfg(videos, out)  # writes the manifest
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "hiermovie.workflows.cli", "pretrain-backbone", "--input", cfg.input,
           "--objective", objective,
           "--out", str(out), "--steps", "4", "--batch_size", "2", "--workers", "0",
           "--backbone.input_size", "32", "--hidden", "32", "--proj_dim", "16", "--device", "cpu",
           "--clip.num_frames", "4", "--clip.sampling_rate", "2", "--progress", "false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    # Run.finish compares the ranks' weights: without DDP's all-reduced gradients each rank
    # would step on its own half of the data, and the job fails with "different weights"
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 processes (DDP)" in r.stdout
    assert len(_losses(out)) == 4
    assert (out / "backbone.safetensors").exists()


def test_summary_reports_the_verb_share_extract_would_store(tmp_path):
    """extract loads the trained backbone (`trained/DIR`) and stores its origin in the
    provenance; pretrain-backbone's verb share (before and after training) is the one computed
    from the features `extract` stores with it: the same frames, the same model."""
    from hiermovie.datasets.synth import write_vidsitu
    from hiermovie.datasets.vidsitu import VidSitu
    from hiermovie.diagnostics import verb_share
    from hiermovie.feature_store import FeatureStore
    from hiermovie.workflows.extract import ExtractConfig, run_extract

    root = tmp_path / "synth"
    write_vidsitu(root, 4, 6, seed=0, size=32, workers=1)
    out = tmp_path / "bb"
    args = {"input": f"vidsitu:{root}", "backbone": {"input_size": 32}, "steps": 4,
            "batch_size": 4, "workers": 0, "progress": False, "warmup": 1, "hidden": 32,
            "proj_dim": 16, "clip": {"num_frames": 4, "sampling_rate": 2, "per_video": 2},
            "labelled": f"vidsitu:{root}", "labelled_clips": 6}
    assert run_pretrain_backbone(from_dict(PretrainBackboneConfig,
                                           {**args, "out": str(out)})) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["verb_share_at_start"] <= 1 and 0 <= summary["verb_share"] <= 1
    # stopped and resumed: the share at the start is still the untrained weights'
    cut = {**args, "out": str(tmp_path / "cut"), "ckpt_every": 2}
    assert run_pretrain_backbone(from_dict(PretrainBackboneConfig, {**cut, "stop_at": 2})) == 0
    assert run_pretrain_backbone(from_dict(PretrainBackboneConfig, {**cut, "resume": True})) == 0
    resumed = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert resumed["verb_share_at_start"] == pytest.approx(summary["verb_share_at_start"])
    store = str(tmp_path / "f.zarr")
    assert run_extract(from_dict(ExtractConfig, {
        "input": f"vidsitu:{root}", "store": store, "progress": False,
        "backbone": {"name": f"trained/{out}"}})) == 0
    fs, valid = FeatureStore(store), VidSitu(root, "valid")
    origin = load_backbone(BackboneConfig(name=f"trained/{out}")).origin
    assert origin["architecture"] == "tiny3d" and origin["steps"] == 4
    for key in ("objective", "architecture", "steps", "videos"):
        assert fs.provenance.weights_origin[key] == origin[key], key
    x = np.stack([fs.get(c).astype(np.float32).mean(1) for c in valid.clips])
    expected = verb_share(x, np.array([valid.majority_verbs(c) for c in valid.clips]))
    # measured 4e-5 apart (bf16 model, float16 store); decoding 8 frames instead: 0.02 apart
    assert summary["verb_share"] == pytest.approx(expected, abs=0.005)


def test_a_static_negative_is_the_first_frame_held_augmented_with_its_clip(videos):
    """--clip.static_negative: one more clip per sample, positive to nothing (group -1), whose
    frames are all its video's first clip's first frame under that clip's own augmentation."""
    cfg = from_dict(ClipConfig, {"num_frames": 4, "sampling_rate": 2, "static_negative": True,
                                 "jitter": 0, "grayscale": 0, "blur": 0})
    plain = MultiClipDataset(videos, replace(cfg, static_negative=False), 32, seed=1)[0]
    s = MultiClipDataset(videos, cfg, 32, seed=1)[0]
    assert len(s["clips"]) == len(plain["clips"]) + 1 == cfg.clips + 1
    assert s["groups"].tolist() == [s["groups"][0]] * cfg.clips + [-1]
    still = s["clips"][-1]
    assert torch.equal(still, still[:1].expand_as(still))  # no motion
    assert torch.equal(still[0], s["clips"][0][0])  # the first clip's frame, same crop
    assert not torch.equal(s["clips"][0], s["clips"][0][:1].expand_as(s["clips"][0]))


def _moving_square_videos(rng, n, size=32, frames=8):
    """n videos [n, 2 clips, 3, T, S, S] (normalised) and their flow images: a bright square
    moving left or right (the class) at 1-2 px per frame over a dark textured background; the
    colours and texture name the video, so appearance alone tells videos apart."""
    from hiermovie.pipeline.clips import flow_images

    clips, flows, direction = [], [], rng.integers(0, 2, n)
    for d in direction:
        bg, fg = rng.integers(0, 100, 3), rng.integers(155, 255, 3)
        still = np.clip(bg + rng.integers(-40, 40, (size, size, 1)), 0, 255).astype(np.uint8)
        video = np.repeat(still[None], frames, 0)
        speed, y = int(rng.integers(1, 3)), size // 2 - 4
        for t in range(frames):
            x = size // 2 - 4 + (t - frames // 2) * speed * (1 if d else -1)
            video[t, y:y + 8, max(x, 0):x + 8] = fg
        clip = torch.from_numpy(video).permute(0, 3, 1, 2)  # [T, 3, S, S]
        clips.append(torch.stack([clip, clip]))  # two views of one moment: same motion
        flows.append(torch.stack([flow_images(clip)] * 2))
    x = torch.stack(clips).permute(0, 1, 3, 2, 4, 5).float() / 127.5 - 1
    return x, torch.stack(flows).permute(0, 1, 3, 2, 4, 5).float(), direction


def _direction_share(flow_weight: float, steps: int = 100, seed: int = 0) -> float:
    """Train tiny3d/8 with MoDist's loss (flow_weight 0: CVRL alone) on moving squares; the
    direction's share of its frozen features' variance on fresh videos."""
    from hiermovie.diagnostics import verb_share
    from hiermovie.pipeline.backbones.tiny3d import Tiny3D
    from hiermovie.pipeline.ssl import ClipLearner

    torch.manual_seed(seed)
    backbone = Tiny3D(width=8)
    model = ClipLearner(backbone, backbone.dim, "modist", proj_dim=16, hidden=32,
                        flow_weight=flow_weight, motion_width=8)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng, groups = np.random.default_rng(seed), torch.arange(16)[:, None].expand(16, 2)
    for _ in range(steps):
        x, flow, _ = _moving_square_videos(rng, 16)
        loss = model(x, groups, flow)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, _, direction = _moving_square_videos(np.random.default_rng(100), 128)
    with torch.no_grad():
        feats = backbone.eval()(x[:, 0]).mean(dim=(2, 3, 4)).numpy()
    return verb_share(feats[None], direction[None])


def test_modist_cross_modal_term_makes_rgb_features_about_motion():
    """Classes told apart only by motion: with the RGB-flow term, the direction is a clearly
    larger share of the frozen RGB features (0.17-0.26 over seeds 0-2) than with CVRL's term
    alone (0.06-0.07), whose appearance already tells every video apart."""
    modist, cvrl = _direction_share(1.0), _direction_share(0.0)
    assert modist > 2 * cvrl and modist > cvrl + 0.05, (modist, cvrl)


def test_modist_gradients_reach_both_pathways():
    from hiermovie.pipeline.backbones.tiny3d import Tiny3D
    from hiermovie.pipeline.ssl import ClipLearner

    backbone = Tiny3D(width=8)
    model = ClipLearner(backbone, backbone.dim, "modist", proj_dim=16, hidden=32,
                        motion_width=8)
    x, flow, _ = _moving_square_videos(np.random.default_rng(0), 4)
    model(x, torch.arange(4)[:, None].expand(4, 2), flow).backward()
    for part in (model.backbone, model.projector, model.motion, model.motion_projector):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_flow_images_follow_the_motion():
    """DIS flow of a square moving right is positive in x where the square is, ~0 elsewhere."""

    x, flow, direction = _moving_square_videos(np.random.default_rng(1), 6)
    for f, d in zip(flow[:, 0], direction, strict=True):  # [3, T, S, S]
        moving = f[2] > 0.5
        assert moving.any() and (f[2][~moving].abs() < 0.5).float().mean() > 0.9
        dx = f[0][moving].mean()
        assert (dx > 0.3) if d else (dx < -0.3)


def test_modist_saves_the_rgb_pathway_only_and_it_extracts(videos, tmp_path):
    from safetensors.torch import load_file

    from hiermovie.pipeline.backbones.inference import encode

    out = tmp_path / "modist"
    assert run_pretrain_backbone(_cfg(videos, out, objective="modist", workers=1)) == 0
    saved = load_file(out / "backbone.safetensors")
    fresh = load_backbone(BackboneConfig(name="tiny3d"))
    assert saved.keys() == fresh.state_dict().keys()  # no motion pathway, no heads
    model = load_backbone(BackboneConfig(name=f"trained/{out}"))
    assert model.origin["objective"] == "modist" and "DIS" in model.origin["flow"]
    frames = np.zeros((2, 4, 32, 32, 3), np.uint8)
    feats = encode(model, frames, BackboneConfig(name=f"trained/{out}"), "cpu")
    assert feats.shape[0] == 2 and np.isfinite(feats).all()


def test_supervised_trains_on_labelled_actions_and_refuses_unlabelled_input(videos, tmp_path):
    from hiermovie.config import ConfigError
    from hiermovie.datasets.synth import write_actions

    root = tmp_path / "actions"
    write_actions(root, 12, 0, size=32, workers=1)
    out = tmp_path / "sup"
    cfg = _cfg(videos, out, objective="supervised", steps=4)
    assert run_pretrain_backbone(replace(cfg, input=f"kinetics:{root}")) == 0
    origin = load_backbone(BackboneConfig(name=f"trained/{out}")).origin
    assert origin["objective"] == "supervised" and len(origin["classes"]) > 2
    with pytest.raises(ConfigError, match="needs a label for every video"):
        run_pretrain_backbone(_cfg(videos, tmp_path / "sup2", objective="supervised"))
