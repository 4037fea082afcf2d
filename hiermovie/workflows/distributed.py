"""DDP for the training jobs: the process group from torchrun's environment, the device, and
a check that every rank holds the same weights."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch


def init_distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun."""
    if "WORLD_SIZE" in os.environ and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend, timeout=timedelta(minutes=10))
    if torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


# Collectives whose tensors were made in Python, kept until the process exits. A gloo worker
# thread may hold the last reference to such a work when the group is torn down; freeing its
# Python tensors there needs the GIL, which the thread tearing down the group holds while it
# joins that worker: a hang at exit after the job's last line (2 runs in 50 on a loaded CPU).
_KEEP_WORK: list[Any] = []


def check_ranks_agree(model: torch.nn.Module) -> None:
    flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
    mine = torch.stack([flat.sum(), (flat * flat).sum(), flat[::7].sum()])
    every = [torch.empty_like(mine) for _ in range(torch.distributed.get_world_size())]
    work = torch.distributed.all_gather(every, mine, async_op=True)
    work.wait()
    _KEEP_WORK.append(work)
    if not all(torch.allclose(e, every[0], rtol=1e-6, atol=1e-9) for e in every):
        raise RuntimeError(f"DDP ranks hold different weights after training (fingerprints "
                           f"{[e.tolist() for e in every]}): gradients were not all-reduced")


def finish_distributed() -> None:
    """Leave the process group together: rank 0 may still be saving when the others finish."""
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def pick_device(name: str, world: int) -> torch.device:
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if name == "auto" else name)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device
