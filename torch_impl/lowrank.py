"""``LowRankLinear``: an ``nn.Linear`` replaced by its truncated SVD; the rank rule and the per-layer report.

Shape glossary (N = batch, r = rank):
    x          [N, in]
    A          [r, in]     top-r right singular vectors (orthonormal rows)
    B          [out, r]    top-r left singular vectors scaled by the singular values
    factorized     y = B (A x) + b        r * (in + out) multiply-accumulates per example
    reconstructed  y = (B A) x + b        in * out, the take-home's Part 2 (weight = u @ v)

The split (singular values in the second factor) is the take-home's
``rank_approximated_weight``: its Haiku ``u [in, r]`` is ``A.T`` and ``v [r, out]`` is ``B.T``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Mode = Literal["factorized", "reconstructed"]
MODES: tuple[str, ...] = ("factorized", "reconstructed")
# f * min(in, out) is floored; the slack keeps 0.7 * 10 = 6.999... style float error from
# dropping a singular value.
_FLOOR_SLACK = 1e-9


def rank_from_fraction(rank_fraction: float, in_features: int, out_features: int) -> int:
    """``max(1, floor(f * min(in, out)))``; f must be in (0, 1]."""
    if not (isinstance(rank_fraction, (int, float)) and 0.0 < rank_fraction <= 1.0):
        raise ValueError(f"rank_fraction must be in (0, 1], got {rank_fraction!r}")
    return max(1, math.floor(rank_fraction * min(in_features, out_features) + _FLOOR_SLACK))


def break_even_rank(in_features: int, out_features: int) -> float:
    """r* = in*out/(in+out): below it the two factors cost fewer MACs than the dense weight."""
    return in_features * out_features / (in_features + out_features)


SVD = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def linear_svd(linear: nn.Linear) -> SVD:
    """``U, S, Vh`` of the weight ``[out, in]``, in float64 on the CPU; sweeps compute it once per layer.

    On the CPU whatever the layer's device: LAPACK's divide-and-conquer SVD of a 3000 x 3072
    float64 matrix takes seconds, cuSOLVER's float64 SVD on a GPU is far slower.
    """
    return torch.linalg.svd(linear.weight.detach().to("cpu", torch.float64), full_matrices=False)


def model_svds(model: nn.Module) -> dict[str, SVD]:
    """The SVD of every ``nn.Linear`` weight in ``model``, keyed by layer name."""
    return {name: linear_svd(m) for name, m in model.named_modules() if isinstance(m, nn.Linear)}


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


class LowRankLinear(nn.Module):
    """``y = B(Ax) + b`` with ``A: [rank, in]``, ``B: [out, rank]``; two forward paths, one switch."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True,
                 mode: Mode = "factorized") -> None:
        super().__init__()
        if not 1 <= rank <= min(in_features, out_features):
            raise ValueError(f"rank must be in [1, min(in, out)] = [1, {min(in_features, out_features)}] "
                             f"for a {in_features}->{out_features} layer, got {rank}")
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.A = nn.Parameter(torch.empty(rank, in_features))
        self.B = nn.Parameter(torch.empty(out_features, rank))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.mode = check_mode(mode)
        # Nested-rank training (torch_impl.compare.nested_rank) runs a prefix of the directions; None: all.
        self.active_rank: int | None = None
        self._dense_cache: tuple[tuple[int, ...], torch.Tensor] | None = None
        # A plain fan-in init for layers built from scratch; from_linear overwrites it (an
        # orthogonal init would cost a QR of up to 3072x3000 per layer for nothing).
        nn.init.normal_(self.A, std=1.0 / math.sqrt(in_features))
        nn.init.normal_(self.B, std=1.0 / math.sqrt(rank))

    @classmethod
    def from_linear(cls, linear: nn.Module, rank: int | None = None, rank_fraction: float | None = None,
                    mode: Mode = "factorized", svd: SVD | None = None) -> LowRankLinear:
        """Truncated SVD of a trained ``nn.Linear`` (computed in float64, cast back).

        ``svd`` may pass ``linear_svd(linear)`` computed earlier, to reuse it across ranks.
        """
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"from_linear takes an nn.Linear, got {type(linear).__name__}; "
                             "convolutions and other layers are not factorized by this class")
        if (rank is None) == (rank_fraction is None):
            raise ValueError("pass exactly one of rank= or rank_fraction=")
        if rank is None:
            rank = rank_from_fraction(rank_fraction, linear.in_features, linear.out_features)
        layer = cls(linear.in_features, linear.out_features, rank, bias=linear.bias is not None, mode=mode)
        w = linear.weight.detach()
        u, s, vh = svd if svd is not None else linear_svd(linear)
        with torch.no_grad():
            layer.A.copy_(vh[:rank].to(w.dtype))
            layer.B.copy_((u[:, :rank] * s[:rank]).to(w.dtype))
            if linear.bias is not None:
                layer.bias.copy_(linear.bias.detach())
        return layer.to(w.device)

    @classmethod
    def unmerge(cls, linear: nn.Linear, rank: int, mode: Mode = "factorized") -> LowRankLinear:
        """``merge``'s inverse for a weight of rank ``rank``: its two SVD factors (``from_linear``)."""
        return cls.from_linear(linear, rank=rank, mode=mode)

    def merge(self) -> nn.Linear:
        """The ``nn.Linear`` computing the same function in one matrix: weight ``B @ A`` (formed in
        float64, cast back), same bias, same device and dtype. ``unmerge(merged, rank)`` undoes it."""
        a, b = self.A.detach(), self.B.detach()
        out = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device=a.device, dtype=a.dtype)
        with torch.no_grad():
            out.weight.copy_((b.double() @ a.double()).to(a.dtype))
            if self.bias is not None:
                out.bias.copy_(self.bias.detach())
        return out

    def reconstructed_weight(self) -> torch.Tensor:
        """``B @ A``: the rank-r weight ``[out, in]``."""
        return self.B @ self.A

    def _dense_weight(self) -> torch.Tensor:
        if torch.is_grad_enabled() and (self.A.requires_grad or self.B.requires_grad):
            return self.reconstructed_weight()  # differentiable; no cache while training
        # For inference the product is formed once, as the take-home did, and reused until
        # the factors change (tracked by their version counters).
        key = self._cache_key()
        if self._dense_cache is None or self._dense_cache[0] != key:
            with torch.no_grad():
                self._dense_cache = (key, self.reconstructed_weight())
        return self._dense_cache[1]

    def _cache_key(self) -> tuple[int, ...]:
        return (self.A._version, self.B._version, self.A.data_ptr(), self.B.data_ptr())

    def relocated(self) -> None:
        """The factors were moved to new memory with the same values (``latency.relayout``):
        the formed product moves too, instead of being formed again inside a timed call."""
        if self._dense_cache is not None:
            self._dense_cache = (self._cache_key(), self._dense_cache[1].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.active_rank is not None:
            k = self.active_rank
            return F.linear(F.linear(x, self.A[:k]), self.B[:, :k], self.bias)
        if self.mode == "factorized":
            return F.linear(F.linear(x, self.A), self.B, self.bias)
        return F.linear(x, self._dense_weight(), self.bias)

    def macs(self) -> int:
        """Multiply-accumulates per example in the current mode."""
        if self.mode == "factorized":
            return self.rank * (self.in_features + self.out_features)
        return self.in_features * self.out_features

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
                f"bias={self.bias is not None}, mode={self.mode}")


def set_mode(model: nn.Module, mode: Mode) -> nn.Module:
    """Switch every ``LowRankLinear`` in ``model`` to ``mode``; returns ``model``."""
    check_mode(mode)
    for m in model.modules():
        if isinstance(m, LowRankLinear):
            m.mode = mode
    return model


@dataclass
class LayerReport:
    name: str
    in_features: int
    out_features: int
    rank: int | None  # None: kept dense
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    kept: str = ""  # why a layer stayed dense ("" when factorized)
    shared_as: list[str] = field(default_factory=list)  # the layer's other names, where it is used twice
