"""The machine's roofline, measured in the same run as the models, and each model's share of it.

Two numbers bound how fast any model can run here: the fp32 matrix-multiply rate (one large
GEMM) and the memory bandwidth (one large copy). A model that does ``F`` floating-point
operations and must read ``W`` bytes of weights, plus its input and logits, cannot finish a
call sooner than ``max(F / rate, bytes / bandwidth)``; the ratio of that bound to the measured
time is the achieved fraction of the roofline. Activations are left out of the bytes (they
may stay in cache), so the bound is optimistic and the fraction a lower estimate.

Shapes: images ``[B, 32, 32, 3]`` uint8 (3,072 bytes each), logits ``[B, 10]`` fp32.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.benchmark import Timer

from torch_impl.lowrank import LowRankLinear
from torch_impl.results import stored_bytes

GEMM_N = 2048  # 2 * 2048^3 = 17 GFLOP: a second or less on 2 cores, far above cache effects
COPY_MB = 256  # far beyond any last-level cache
MIN_RUN_S = 1.0
INPUT_BYTES, LOGIT_BYTES = 32 * 32 * 3, 10 * 4


@dataclass
class Roofline:
    gemm_flops_per_s: float
    copy_bytes_per_s: float  # bytes read plus bytes written, per second
    gemm_n: int
    copy_mb: int
    device: str

    def as_dict(self) -> dict:
        return asdict(self)

    def bound_s(self, flops: float, nbytes: float) -> float:
        return max(flops / self.gemm_flops_per_s, nbytes / self.copy_bytes_per_s)


def _timed(stmt: str, env: dict, device: torch.device) -> float:
    # blocked_autorange picks the number of calls per block and reports the median block
    timer = Timer(stmt=stmt, globals=env, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=MIN_RUN_S).median


def measure_roofline(device: str | torch.device = "cpu", gemm_n: int = GEMM_N, copy_mb: int = COPY_MB) -> Roofline:
    """Peak fp32 GEMM rate and copy bandwidth of ``device``, each the median of timed blocks."""
    device = torch.device(device)
    a, b = (torch.randn(gemm_n, gemm_n, device=device) for _ in range(2))
    out = torch.empty(gemm_n, gemm_n, device=device)
    gemm_s = _timed("torch.mm(a, b, out=out)", {"torch": torch, "a": a, "b": b, "out": out}, device)
    src = torch.ones(copy_mb * 2**20 // 4, device=device)
    dst = torch.empty_like(src)
    copy_s = _timed("dst.copy_(src)", {"src": src, "dst": dst}, device)
    return Roofline(2 * gemm_n**3 / gemm_s, 2 * src.numel() * 4 / copy_s, gemm_n, copy_mb, str(device))


def weight_bytes_read(model: nn.Module) -> int:
    """Bytes of weights one forward pass reads: what is stored, except that a reconstructed
    low-rank layer reads its cached dense product instead of its two factors."""
    total = stored_bytes(model)
    for m in model.modules():
        if isinstance(m, LowRankLinear) and m.mode == "reconstructed":
            total += (m.in_features * m.out_features - m.rank * (m.in_features + m.out_features)) * m.A.element_size()
    return total


def roofline_fraction(roof: Roofline, macs_per_example: int, weight_bytes: int, batch_size: int,
                      per_example_us: float) -> float:
    """Bound over measured time for one call of ``batch_size`` examples (1.0: at the roofline)."""
    flops = 2 * macs_per_example * batch_size
    nbytes = weight_bytes + batch_size * (INPUT_BYTES + LOGIT_BYTES)
    return roof.bound_s(flops, nbytes) / (per_example_us * 1e-6 * batch_size)
