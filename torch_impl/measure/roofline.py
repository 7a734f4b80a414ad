"""The machine's roofline, measured in the same run as the models, and each model's share of it.

Two numbers bound how fast any model can run here: the fp32 matrix-multiply rate (one large
GEMM) and the memory bandwidth. A model that does ``F`` floating-point operations and must
read ``W`` bytes of weights, plus its input and logits, cannot finish a call sooner than
``max(F / rate, bytes / bandwidth)``; the ratio of that bound to the measured time is the
achieved fraction of the roofline. Activations are left out of the bytes (they may stay in
cache), so the bound is optimistic and the fraction a lower estimate.

The bandwidth is measured over a buffer as large as the dense model's weights (85 MB), the
working set a run of calls streams: where that fits in the last-level cache (300 MB on some
machines here) the weights come from there, and so do the buffer's bytes. It is measured
two ways: a copy (reported; read and write counted) and a reduction, which only reads, as
inference reads its weights; the bound uses the read rate. With a copy of a 256 MB buffer
instead, a dense batch-1 call read its weights faster than that "bound" allowed (130%).

Shapes: images ``[B, 32, 32, 3]`` uint8 (3,072 bytes each), logits ``[B, 10]`` fp32.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.benchmark import Timer

from torch_impl.lowrank import LowRankLinear
from torch_impl.measure.size import stored_bytes

GEMM_N = 2048  # 2 * 2048^3 = 17 GFLOP: a second or less on 2 cores, far above cache effects
DEFAULT_BUFFER_BYTES = 85_028_104  # the dense network's weights in fp32
MIN_RUN_S = 1.0
INPUT_BYTES, LOGIT_BYTES = 32 * 32 * 3, 10 * 4


@dataclass
class Roofline:
    gemm_flops_per_s: float
    read_bytes_per_s: float  # a reduction over the buffer: bytes read per second
    copy_bytes_per_s: float  # a copy of the buffer: bytes read plus bytes written, per second
    gemm_n: int
    buffer_bytes: int
    device: str

    def as_dict(self) -> dict:
        return asdict(self)

    def bound_s(self, flops: float, nbytes: float) -> float:
        return max(flops / self.gemm_flops_per_s, nbytes / self.read_bytes_per_s)


def _timed(stmt: str, env: dict, device: torch.device, min_run_s: float) -> float:
    """Seconds per call in the fastest of ``blocked_autorange``'s blocks: a peak rate is what the
    machine reaches undisturbed, and on a shared machine the median block is often disturbed
    (medians here read 230-330 GFLOP/s within one hour)."""
    timer = Timer(stmt=stmt, globals=env, num_threads=torch.get_num_threads())
    return min(timer.blocked_autorange(min_run_time=min_run_s).times)


def measure_roofline(device: str | torch.device = "cpu", buffer_bytes: int = DEFAULT_BUFFER_BYTES,
                     gemm_n: int = GEMM_N, min_run_s: float | None = None) -> Roofline:
    """Peak fp32 GEMM rate, and read and copy bandwidth over ``buffer_bytes`` (pass the dense
    model's weight bytes), of ``device``, each from the fastest of its timed blocks."""
    device = torch.device(device)
    min_run_s = MIN_RUN_S if min_run_s is None else min_run_s  # read at call time: tests shorten it
    a, b = (torch.randn(gemm_n, gemm_n, device=device) for _ in range(2))
    out = torch.empty(gemm_n, gemm_n, device=device)
    gemm_s = _timed("torch.mm(a, b, out=out)", {"torch": torch, "a": a, "b": b, "out": out}, device, min_run_s)
    src = torch.ones(max(1, buffer_bytes // 4), device=device)
    dst = torch.empty_like(src)
    copy_s = _timed("dst.copy_(src)", {"src": src, "dst": dst}, device, min_run_s)
    read_s = _timed("src.sum()", {"src": src}, device, min_run_s)
    nbytes = src.numel() * src.element_size()
    return Roofline(2 * gemm_n**3 / gemm_s, nbytes / read_s, 2 * nbytes / copy_s, gemm_n, nbytes, str(device))


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
