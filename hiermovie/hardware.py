"""What the processor can do, for the jobs that pick an arithmetic ("auto" precision)."""

from __future__ import annotations

import functools


def cpu_has_bf16() -> bool:
    """Whether the CPU multiplies bfloat16 natively (elsewhere bf16 is emulated, slower than
    fp32)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """"auto" -> "bf16" where `device` ("cpu" or "cuda") multiplies bfloat16 natively
    (elsewhere autocast would emulate it, slower than fp32), else "fp32"; other values are
    returned as given. The one rule every job's "auto" follows."""
    if precision != "auto":
        return precision
    if device == "cuda":
        import torch

        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


# The environment of decode workers. glibc gives threads their own heaps (arenas); what a
# decode task frees in one (a film's index, its parts) is not reused by the next allocation
# landing in another, so the task crept up with the film's length. With one heap a decode
# task's peak is 1.18x from a 1- to a 120-min take (was 1.28x), at the same decode rate
# (BENCHMARKS.md, "Memory"); `return_freed_buffers` adds nothing there (1.18x without it).
ONE_HEAP = {"MALLOC_ARENA_MAX": "1"}


@functools.cache
def return_freed_buffers(threshold: int = 1 << 20) -> None:
    """Make this process give freed buffers of `threshold` bytes or more back to the system.

    glibc serves blocks above its mmap threshold with their own mappings, returned on free,
    but raises the threshold (up to 32 MiB) each time it sees such a block freed; a model
    actor that handles frames part after part then keeps its freed parts in the heap and
    creeps up with the film's length. Fixing the threshold keeps them mapped and returned. A no-op
    where the C library is not glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, threshold)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass
