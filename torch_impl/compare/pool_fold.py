"""Folding each 2x2 average pool into the convolution before it: a non-SVD trunk compression.

Once the MLP is compressed, the trunk is the wall, and most of its time is spent at full
resolution: conv1 computes 18 x 32 x 32 outputs per image, its ReLU and the pool then
each read them again, and the pool throws three quarters of that resolution away.

A 2x2/2 average pool after a stride-1 convolution is itself linear, so the two compose
into one convolution with a (k+1) x (k+1) kernel and stride 2 that computes only the
pooled outputs:

    pool(conv(x))[i, j] = 1/4 sum_{a,b in {0,1}} conv(x)[2i+a, 2j+b] = conv'(x)[i, j],
    W'[u, v] = 1/4 sum_{a,b in {0,1}} W[u-a, v-b]      (W zero outside its k x k support)

That identity is exact (``fold_pool_into_conv``, tested). The network puts a ReLU between
conv and pool, which does not commute with the average, so ``fold_pools`` turns
conv -> ReLU -> pool (-> ReLU) into conv' -> ReLU: the ReLU now acts on the average of
the pre-activations instead of averaging the activations. That model starts close to the
original but not equal to it, and a recovery fine-tune (ideally distilled from the dense
model, ``torch_impl.compare.distill``) closes the gap. Work per image (this network):

    conv1 5x5, 18 x 32 x 32 outputs, 75 MACs each   1.38 M  ->  6x6/2, 18 x 16 x 16, 108 each  0.50 M
    conv2 5x5, 48 x 16 x 16 outputs, 450 MACs each  5.53 M  ->  6x6/2, 48 x 8 x 8, 648 each    1.99 M

and the element-wise passes over the 32 x 32 maps disappear.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def _check_foldable(conv: nn.Module, pool: nn.Module) -> None:
    if type(conv) is not nn.Conv2d:
        raise ValueError(f"fold_pools folds a plain nn.Conv2d, got {type(conv).__name__}; fold the pools "
                         "before factorizing the convolutions (torch_impl.lowrank_conv)")
    k = conv.kernel_size
    if (conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1 or k[0] != k[1] or k[0] % 2 == 0
            or conv.padding != (k[0] // 2, k[1] // 2) or conv.padding_mode != "zeros"):
        raise ValueError(f"fold_pools needs a stride-1, SAME-padded, odd square, ungrouped convolution; got {conv}")
    if not (isinstance(pool, nn.AvgPool2d) and pool.kernel_size in (2, (2, 2)) and pool.stride in (2, (2, 2))
            and pool.padding in (0, (0, 0))):
        raise ValueError(f"fold_pools folds a 2x2, stride-2, unpadded nn.AvgPool2d, got {pool}")


def fold_pool_into_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """The stride-2 convolution equal to ``AvgPool2d(2, 2)(conv(x))`` for even input sizes.

    Shapes: weight [O, I, k, k] -> [O, I, k+1, k+1]; padding k//2 on each side, stride 2,
    so a 2H x 2W input gives H x W outputs, as conv + pool did.
    """
    _check_foldable(conv, nn.AvgPool2d(2, 2))
    w = conv.weight.detach()
    shifted = [F.pad(w, (b, 1 - b, a, 1 - a)) for a in (0, 1) for b in (0, 1)]  # W[u-a, v-b] on (k+1)^2
    k = conv.kernel_size[0]
    out = nn.Conv2d(conv.in_channels, conv.out_channels, k + 1, stride=2, padding=k // 2,
                    bias=conv.bias is not None).to(w.device, w.dtype)
    with torch.no_grad():
        out.weight.copy_(torch.stack(shifted).sum(0) / 4)
        if conv.bias is not None:
            out.bias.copy_(conv.bias)
    return out


def fold_pools(model: nn.Module) -> nn.Module:
    """A copy of a ``Net``-layout model whose ``features`` run conv -> ReLU -> pool (-> ReLU)
    as ``fold_pool_into_conv(conv)`` -> ReLU; every other module is kept. Not output-exact
    (see the module doc): fine-tune after."""
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential):
        raise ValueError("fold_pools expects a Net-like model with a `features` nn.Sequential")
    out = copy.deepcopy(model)
    mods, new, i, folded = list(out.features), [], 0, 0
    while i < len(mods):
        window = mods[i: i + 3]
        if len(window) == 3 and isinstance(window[1], nn.ReLU) and isinstance(window[2], nn.AvgPool2d):
            _check_foldable(window[0], window[2])
            new += [fold_pool_into_conv(window[0]), nn.ReLU()]
            i += 3
            folded += 1
            if i < len(mods) and isinstance(mods[i], nn.ReLU):  # ReLU of a ReLU's average: already >= 0
                i += 1
        else:
            new.append(mods[i])
            i += 1
    if not folded:
        raise ValueError("fold_pools found no conv -> ReLU -> AvgPool2d sequence in `features`")
    out.features = nn.Sequential(*new)
    return out
