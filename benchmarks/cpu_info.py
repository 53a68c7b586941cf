"""The CPU facts benchmark figures are reported with (TF's kernels depend on them)."""

import os
import platform


def cpu_flags():
    """The vector extensions that decide TF's CPU kernels (oneDNN is on by default with AVX-512)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags_line = next(line for line in f if line.startswith("flags"))
    except (OSError, StopIteration):
        return "flags unknown"
    have = set(flags_line.split(":", 1)[1].split())
    shown = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in have]
    return " ".join(shown) or "no AVX2"


def cpu_description():
    """'AMD EPYC (2 logical CPUs; avx2 fma)'."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line for line in f if line.startswith("model name")).split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    return f"{name} ({os.cpu_count()} logical CPUs; {cpu_flags()})"
