"""What both training jobs share (`workflows.training`, `workflows.checkpoints`): the optimiser
step and the checkpoint file."""

import numpy as np
import pytest
import torch


def test_grad_clip_bounds_the_update_norm_and_zero_turns_it_off():
    from hiermovie.workflows.training import optimizer_step

    def grad_norm_after(clip: float) -> float:
        w = torch.nn.Parameter(torch.zeros(10))
        opt = torch.optim.SGD([w], lr=0.0)
        optimizer_step(opt, (100 * torch.arange(10.0) * w).sum(), 0.0, clip)
        return float(w.grad.norm())

    assert grad_norm_after(1.0) == pytest.approx(1.0, rel=1e-5)
    assert grad_norm_after(0.0) == pytest.approx(100 * np.linalg.norm(np.arange(10.0)))


def test_checkpoint_is_one_file_and_a_torn_one_is_refused(tmp_path):
    from hiermovie.workflows.checkpoints import load_checkpoint, save_checkpoint

    path = tmp_path / "checkpoint.pt"
    for step in (1, 2):  # overwrite as training does
        save_checkpoint(path, {"step": step, "w": torch.arange(4.0)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert load_checkpoint(path)["step"] == 2
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="corrupted or incomplete"):
        load_checkpoint(path)
