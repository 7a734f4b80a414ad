"""``LowRankConv2d``: a convolution as a ``k x k`` convolution to ``r`` channels, then a ``1 x 1`` one.

A convolution's weight ``[out, in, k, k]`` seen as a matrix ``[out, in*k*k]`` factors like a
linear layer ("channel SVD", the first stage of a Tucker-2 decomposition):
``W ~= B A`` with ``A [r, in, k, k]`` (a ``k x k`` convolution, same stride and padding) and
``B [out, r, 1, 1]``. MACs per output pixel fall from ``out*in*k*k`` to ``r*(in*k*k + out)``:
below ``r* = out*in*k*k / (in*k*k + out)`` it saves work (conv2, 18->48 at 5x5: r* = 43;
conv1, 3->18: r* = 14). Which layers to factor and at what rank is the comparison's choice.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class LowRankConv2d(nn.Module):
    """``expand(reduce(x))``: ``reduce`` is ``k x k``, ``in -> r``; ``expand`` is ``1 x 1``, ``r -> out``."""

    def __init__(self, conv: nn.Conv2d, rank: int) -> None:
        super().__init__()
        max_rank = conv.out_channels
        if conv.groups != 1 or not 1 <= rank <= max_rank:
            raise ValueError(f"LowRankConv2d needs an ungrouped conv and rank in [1, {max_rank}], "
                             f"got groups={conv.groups}, rank={rank}")
        self.rank = rank
        self.reduce = nn.Conv2d(conv.in_channels, rank, conv.kernel_size, stride=conv.stride,
                                padding=conv.padding, dilation=conv.dilation, bias=False)
        self.expand = nn.Conv2d(rank, conv.out_channels, 1, bias=True)

    @classmethod
    def from_factors(cls, conv: nn.Conv2d, a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None
                     ) -> LowRankConv2d:
        """From ``a [r, in, k, k]``, ``b [out, r, 1, 1]`` and a bias ``[out]`` (None: the conv's)."""
        layer = cls(conv, a.shape[0]).to(conv.weight.device, conv.weight.dtype)
        with torch.no_grad():
            layer.reduce.weight.copy_(a)
            layer.expand.weight.copy_(b)
            src = bias if bias is not None else conv.bias
            if src is None:
                layer.expand.bias.zero_()
            else:
                layer.expand.bias.copy_(src)
        return layer

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, rank: int) -> LowRankConv2d:
        """Truncated SVD (float64, on the CPU) of the weight as an ``[out, in*k*k]`` matrix."""
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"from_conv takes an nn.Conv2d, got {type(conv).__name__}")
        w = conv.weight.detach()
        if not 1 <= rank <= min(w.shape[0], w[0].numel()):
            raise ValueError(f"rank must be in [1, {min(w.shape[0], w[0].numel())}] for a {tuple(w.shape)} "
                             f"convolution, got {rank}")
        u, s, vh = torch.linalg.svd(w.reshape(w.shape[0], -1).to("cpu", torch.float64), full_matrices=False)
        a = vh[:rank].reshape(rank, *w.shape[1:])
        b = (u[:, :rank] * s[:rank]).reshape(w.shape[0], rank, 1, 1)
        return cls.from_factors(conv, a.to(w.dtype), b.to(w.dtype), None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.reduce(x))

    def extra_repr(self) -> str:
        return f"rank={self.rank}"


def conv_break_even_rank(conv: nn.Conv2d) -> float:
    """The rank ``r*`` below which the factored convolution does fewer MACs than ``conv``."""
    patch = conv.weight[0].numel()
    return conv.out_channels * patch / (patch + conv.out_channels)


def compress_convs(model: nn.Module, ranks: dict[str, int]) -> nn.Module:
    """A copy of ``model`` with each named ``nn.Conv2d`` replaced by its rank-``r`` channel SVD."""
    out = copy.deepcopy(model)
    for name, rank in ranks.items():
        try:
            conv = out.get_submodule(name)
        except AttributeError:
            raise ValueError(f"ranks names {name!r}, which is not a layer of the model") from None
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"layer {name!r} is a {type(conv).__name__}, not an nn.Conv2d")
        out.set_submodule(name, LowRankConv2d.from_conv(conv, rank))
    return out
