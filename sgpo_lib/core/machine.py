"""What the CPU can do fast: instruction sets, native bfloat16, threads (for env.json and benchmarks).

Times measured on one machine do not carry over to another unless the kernels are the same:
on a CPU without native bfloat16 (no AVX512-BF16 or AMX, e.g. AVX2-only AMD EPYC) PyTorch
runs bfloat16 matmuls through slow fallback kernels, and a bf16-autocast training step of the
toy student is about 10x slower than in float32 (measured: 3.1 s vs 0.29 s per step), while
on a CPU with AMX the two are equal. So every run records these facts in `env.json`, the
report prints them, and `bench/bench_env.py` turns them into tokens/s a user can compare.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

# Instruction-set flags (from /proc/cpuinfo) that decide which kernels PyTorch and oneDNN take.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def _cpuinfo() -> tuple[str, set[str]]:
    """The CPU model name and its flags, from /proc/cpuinfo (empty where there is none)."""
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return platform.processor() or platform.machine(), set()
    model, flags = "", set()
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model, flags


def native_bf16() -> bool:
    """True when PyTorch's CPU kernels run bfloat16 natively (oneDNN with AVX512-BF16 or AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_facts() -> dict:
    """Model, cores, the ISA flags above, PyTorch's kernel level, native bf16 and thread settings.

    Example:
        >>> sorted(cpu_facts())[:3]
        ['cores', 'isa', 'model']
    """
    model, flags = _cpuinfo()
    return {
        "model": model,
        "cores": os.cpu_count(),
        "isa": [f for f in ISA_FLAGS if f in flags],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": native_bf16(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }

