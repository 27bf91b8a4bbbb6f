"""What this CPU offers, for choosing between equivalent compute paths (never what a file holds).

Only speed depends on it: every path it selects computes what the others do (exactly, on the
coding path; within float rounding in the transforms), so an answer that is wrong or missing, as
on a CPU that is not x86 or a system without /proc, costs time, never a file.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def flags() -> frozenset[str]:
    """The feature flags of /proc/cpuinfo (Linux, x86: ``avx512_vnni``, ``amx_int8``, ...); empty elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].split())


def has_bf16() -> bool:
    """Fast bfloat16 convolutions in oneDNN: AMX or AVX-512 BF16 (elsewhere bf16 is emulated, slower than float32)."""
    return bool(flags() & {"amx_bf16", "avx512_bf16"})


def has_int8_dot() -> bool:
    """Fast int8 matrix products with int32 sums: AMX, AVX-512 VNNI or AVX-VNNI."""
    return bool(flags() & {"amx_int8", "avx512_vnni", "avx_vnni"})
