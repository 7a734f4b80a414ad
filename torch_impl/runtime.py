"""Process-wide CPU settings that training and latency measurements depend on.

Denormal (subnormal) floats are 10-100x slower on x86 CPUs. Training this network kills
many hidden ReLU units; their Adam moments then decay through the denormal range. On
2 cores, after 1,500 steps, the fused Adam step measured 270 ms instead of 16 ms and
forward+backward 290 ms instead of 150 ms, until denormals were flushed to zero
(FTZ/DAZ), which changes no value above 1.2e-38.

On a GPU, cuDNN convolutions run in TF32 by default (10-bit mantissa); the latency
curves and the JAX comparison use full fp32 on both sides (``full_fp32``), so that
both frameworks do the same arithmetic and the numbers compare.

The flag lives in each thread's MXCSR register; worker threads copy it when they are
created, so it must be set before the first parallel torch operation of the process.
"""

from __future__ import annotations

import torch


def flush_denormals() -> bool:
    """Flush denormals to zero in this process (call first thing); False if the CPU lacks FTZ/DAZ."""
    return torch.set_flush_denormal(True)


def full_fp32() -> None:
    """No TF32 in CUDA matmuls or convolutions (PyTorch's matmul default already; cuDNN's is TF32)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def resolve_device(name: str) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; a named device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA GPU is visible to torch here; use --device cpu")
    return device
