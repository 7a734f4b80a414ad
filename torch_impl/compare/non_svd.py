"""The non-SVD alternatives the take-home invites: a smaller head, magnitude pruning, int8.

Each returns a new model and leaves its input untouched:
  * ``drop_hidden_mlp``: the four hidden layers go, a fresh ``Linear(3072, 10)`` head
    replaces the MLP (a solution to the take-home found it beat SVD once retrained);
  * ``magnitude_prune``: global L1 unstructured pruning of the linear weights with
    ``torch.nn.utils.prune``, made permanent. Zeros in a dense tensor save no time in
    dense kernels, which the latency column shows;
  * ``prune_channels``: structured pruning of the convolutions' output channels (the
    filters with the largest L1 norms stay, as in Li et al. 2017), which shrinks the work
    at 32x32 resolution that no low-rank factorization removes; fine-tune after;
and int8 is ``torch_impl.factorize.dynamic_int8`` (the deployment frontier applies it too).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import prune

from torch_impl.model import DEFAULT_POOLING, FLAT_FEATURES_BY_POOLING, NUM_CLASSES, haiku_init_


def drop_hidden_mlp(model: nn.Module, seed: int = 0) -> nn.Module:
    """The trunk of ``model`` with a freshly initialised ``Linear(flatten, 10)`` head (train it next)."""
    if not isinstance(getattr(model, "classifier", None), nn.Sequential):
        raise ValueError("drop_hidden_mlp expects a Net-like model with a `classifier` nn.Sequential")
    out = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(FLAT_FEATURES_BY_POOLING[getattr(model, "pooling", DEFAULT_POOLING)], NUM_CLASSES)
        haiku_init_(head)
    out.classifier = nn.Sequential(head.to(next(model.parameters()).device))
    return out


def magnitude_prune(model: nn.Module, amount: float, permanent: bool = True) -> nn.Module:
    """A copy with the smallest-magnitude share ``amount`` of all linear weights set to zero.

    ``permanent=False`` keeps torch's mask re-parametrisation, so that a fine-tune keeps the
    zeros; ``make_permanent`` bakes it in afterwards.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount (share of linear weights to zero) must be in [0, 1), got {amount}")
    out = copy.deepcopy(model)
    targets = [(m, "weight") for m in out.modules() if isinstance(m, nn.Linear)]
    if not targets:
        raise ValueError("magnitude_prune found no nn.Linear layer to prune")
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
    return make_permanent(out) if permanent else out


def make_permanent(model: nn.Module) -> nn.Module:
    """Bakes pruning masks in (in place): plain dense weights with zeros."""
    for m in model.modules():
        if prune.is_pruned(m) and isinstance(m, nn.Linear):
            prune.remove(m, "weight")
    return model


def prune_channels(model: nn.Module, keep_conv1: int, keep_conv2: int) -> nn.Module:
    """A copy of a dense ``Net`` keeping ``keep_conv1`` of conv1's 18 and ``keep_conv2`` of conv2's
    48 output channels (largest L1 filter norms); conv2's inputs and fc1's columns follow.

    Shapes: conv1 ``[18, 3, 5, 5]`` -> ``[k1, 3, 5, 5]``; conv2 ``[48, 18, 5, 5]`` -> ``[k2, k1, 5, 5]``;
    fc1 ``[3000, 8*8*48]`` -> ``[3000, 8*8*k2]`` (flatten order H, W, C: column ``p*48 + c``).
    """
    out = copy.deepcopy(model)
    conv1, conv2, fc1 = out.features[0], out.features[4], out.classifier[0]
    if not (isinstance(conv1, nn.Conv2d) and isinstance(conv2, nn.Conv2d) and isinstance(fc1, nn.Linear)):
        raise ValueError("prune_channels expects a dense Net: prune channels before other compression")
    if not (1 <= keep_conv1 <= conv1.out_channels and 1 <= keep_conv2 <= conv2.out_channels):
        raise ValueError(f"keep_conv1 must be in [1, {conv1.out_channels}] and keep_conv2 in "
                         f"[1, {conv2.out_channels}], got {keep_conv1} and {keep_conv2}")

    def strongest(conv: nn.Conv2d, k: int) -> torch.Tensor:
        return conv.weight.detach().abs().sum((1, 2, 3)).topk(k).indices.sort().values

    k1, k2 = strongest(conv1, keep_conv1), strongest(conv2, keep_conv2)
    positions = fc1.in_features // conv2.out_channels
    cols = (torch.arange(positions)[:, None] * conv2.out_channels + k2[None, :]).reshape(-1)
    new1 = nn.Conv2d(conv1.in_channels, keep_conv1, conv1.kernel_size, padding=conv1.padding)
    new2 = nn.Conv2d(keep_conv1, keep_conv2, conv2.kernel_size, padding=conv2.padding)
    new_fc = nn.Linear(positions * keep_conv2, fc1.out_features)
    with torch.no_grad():
        new1.weight.copy_(conv1.weight[k1])
        new1.bias.copy_(conv1.bias[k1])
        new2.weight.copy_(conv2.weight[k2][:, k1])
        new2.bias.copy_(conv2.bias[k2])
        new_fc.weight.copy_(fc1.weight[:, cols])
        new_fc.bias.copy_(fc1.bias)
    dev = conv1.weight.device
    out.features[0], out.features[4], out.classifier[0] = new1.to(dev), new2.to(dev), new_fc.to(dev)
    return out
