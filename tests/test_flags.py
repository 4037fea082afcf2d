"""Flags no other test exercised: each does what its help says (or it would not be a flag)."""

import numpy as np
import pytest
import torch

from hiermovie.config import from_dict


def test_grad_clip_bounds_the_update_norm_and_zero_turns_it_off():
    from hiermovie.workflows.training import optimizer_step

    def grad_norm_after(clip: float) -> float:
        w = torch.nn.Parameter(torch.zeros(10))
        opt = torch.optim.SGD([w], lr=0.0)
        optimizer_step(opt, (100 * torch.arange(10.0) * w).sum(), 0.0, clip)
        return float(w.grad.norm())

    assert grad_norm_after(1.0) == pytest.approx(1.0, rel=1e-5)
    assert grad_norm_after(0.0) == pytest.approx(100 * np.linalg.norm(np.arange(10.0)))


def test_target_fps_sets_the_spacing_of_a_segments_frames():
    from hiermovie.pipeline.plans import PlanConfig, frames_at, sample_times

    times_30fps = np.arange(90) / 30.0
    for fps, step in ((30.0, 2), (10.0, 6)):  # sampling_rate 2 frames at fps, in 30-fps frames
        plan = PlanConfig(num_frames=4, sampling_rate=2, target_fps=fps)
        t = sample_times(plan, 0.0, 2.0)
        np.testing.assert_allclose(np.diff(t), 2 / fps)
        assert (np.diff(frames_at(times_30fps, t)) == step).all()


def test_time_scale_divides_the_start_times_a_time_position_model_reads():
    from hiermovie.contextualizer import Contextualizer, ContextualizerConfig

    def model(scale: float) -> Contextualizer:
        torch.manual_seed(0)
        return Contextualizer(ContextualizerConfig(
            in_dim=8, width=16, layers=1, heads=2, ffn=32, position="time",
            time_scale=scale)).eval()

    x, valid = torch.randn(1, 6, 1, 8), torch.ones(1, 6, dtype=torch.bool)
    start = torch.arange(6.0)[None] * 2
    with torch.no_grad():
        one, two = model(1.0)(x, valid, start_s=start), model(2.0)(x, valid, start_s=2 * start)
        other = model(1.0)(x, valid, start_s=2 * start)
    torch.testing.assert_close(one, two)
    assert not torch.allclose(one, other)  # the times do reach the model


def test_decode_workers_and_inflight_set_the_decoders_and_the_queue():
    from hiermovie.workflows.extract import ExtractConfig
    from hiermovie.workflows.extract.scheduler import Resources

    base = {"input": "in", "store": "s.zarr"}
    default = Resources.of(from_dict(ExtractConfig, base), {"CPU": 8})
    assert (default.decoders, default.inflight) == (8, 2 * 8 + 2)
    asked = Resources.of(from_dict(ExtractConfig, {**base, "decode_workers": 3,
                                                   "decode_inflight": 5}), {"CPU": 8})
    assert (asked.decoders, asked.inflight) == (3, 5)
