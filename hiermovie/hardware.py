"""What the processor can do, for the jobs that pick an arithmetic ("auto" precision)."""

from __future__ import annotations


def cpu_has_bf16() -> bool:
    """Whether the CPU multiplies bfloat16 natively (elsewhere bf16 is emulated, slower than
    fp32)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
