"""Low-rank convolutions: a ``k x k`` convolution to ``r`` channels, then a ``1 x 1`` one.

Once the MLP is compressed, the two convolutions (6.9 M of the dense model's 28.1 M
multiply-accumulates) are the wall. A convolution's weight ``[out, in, k, k]`` seen as a
matrix ``[out, in*k*k]`` factors like a linear layer ("channel SVD", the first stage of
a Tucker-2 decomposition): ``W ~= B A`` with ``A [r, in, k, k]`` (a ``k x k`` convolution,
same stride and padding) and ``B [out, r, 1, 1]``. MACs per output pixel fall from
``out*in*k*k`` to ``r*(in*k*k + out)``: below ``r* = out*in*k*k / (in*k*k + out)`` it saves
work (conv2, 18->48 at 5x5: r* = 43; conv1, 3->18: r* = 14).
"""

from __future__ import annotations

import copy

from torch import nn

from torch_impl.lowrank_conv import LowRankConv2d


def conv_break_even_rank(conv: nn.Conv2d) -> float:
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
