"""The non-SVD alternatives the take-home invites: a smaller head, magnitude pruning, int8.

Each returns a new model and leaves its input untouched:
  * ``drop_hidden_mlp``: the four hidden layers go, a fresh ``Linear(3072, 10)`` head
    replaces the MLP (the seed's candidate found this beat SVD once retrained);
  * ``magnitude_prune``: global L1 unstructured pruning of the linear weights with
    ``torch.nn.utils.prune``, made permanent. Zeros in a dense tensor save no time in
    dense kernels, which the latency column shows;
  * ``dynamic_int8``: ``torch.ao.quantization.quantize_dynamic`` on every linear layer
    (int8 weights, activations quantized per batch). ``LowRankLinear`` factors are first
    turned into two ``nn.Linear`` so that low-rank + int8 combine.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.nn.utils import prune

from torch_impl.lowrank import LowRankLinear
from torch_impl.model import FLAT_FEATURES, NUM_CLASSES, haiku_init_


def drop_hidden_mlp(model: nn.Module, seed: int = 0) -> nn.Module:
    """The trunk of ``model`` with a freshly initialised ``Linear(3072, 10)`` head (train it next)."""
    if not isinstance(getattr(model, "classifier", None), nn.Sequential):
        raise ValueError("drop_hidden_mlp expects a Net-like model with a `classifier` nn.Sequential")
    out = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(FLAT_FEATURES, NUM_CLASSES)
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


def lowrank_as_linears(model: nn.Module) -> nn.Module:
    """A copy with each ``LowRankLinear`` as ``Sequential(Linear(in, r, bias=False), Linear(r, out))``."""
    out = copy.deepcopy(model)
    for name, m in list(out.named_modules()):
        if isinstance(m, LowRankLinear):
            first = nn.Linear(m.in_features, m.rank, bias=False)
            second = nn.Linear(m.rank, m.out_features, bias=m.bias is not None)
            with torch.no_grad():
                first.weight.copy_(m.A)
                second.weight.copy_(m.B)
                if m.bias is not None:
                    second.bias.copy_(m.bias)
            parent, _, child = name.rpartition(".")
            setattr(out.get_submodule(parent) if parent else out, child, nn.Sequential(first, second))
    return out


def dynamic_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of every linear layer (CPU only, as torch's kernels are)."""
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("dynamic int8 quantization runs on the CPU: move the model there first")
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(lowrank_as_linears(model).eval(), {nn.Linear}, dtype=torch.qint8)
