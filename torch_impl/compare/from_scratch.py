"""Low-rank from the start: the factorized network trained from a random init with the recipe.

Every other SVD recipe truncates the trained dense model and then recovers what the
truncation lost. Here the network is built with the truncated model's shapes (the same
ranks, so the same work and the same latency) and trained as the dense network was: init
seed 42 with Haiku's init, Adam 1e-3, L2 1e-4 * 0.5 * sum of squares, the EMA of the
weights (step 0.001, from the init) is what is kept, for the CPU preset's 3,500 steps at
batch 128; optionally distilled from the dense model. Its row answers "would training the
small network directly have done better than compressing the big one?" at equal latency.

The factors are initialised as two stacked Haiku linears would be (``A: [rank, in]`` with
std 1/sqrt(in), ``B: [out, rank]`` with std 1/sqrt(rank), truncated at two std, zero bias):
that is what ``hk.Linear(rank, with_bias=False)`` then ``hk.Linear(out)`` would draw.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from torch_impl.compare.finetune import finetune
from torch_impl.data import CIFAR10DataModule
from torch_impl.ema import TakeHomeEMA
from torch_impl.lowrank import LowRankLinear
from torch_impl.model import haiku_init_, haiku_normal_

RECIPE_STEPS = 3500  # the CPU preset's training length (torch_impl.training.config_from_preset("cpu"))
INIT_SEED = 42


def random_low_rank(template: nn.Module, ranks: dict[str, int | None], seed: int = INIT_SEED) -> nn.Module:
    """``template``'s architecture (weights not used) with the ``nn.Linear`` named in ``ranks``
    as ``LowRankLinear`` of those ranks (None: kept dense, as ``budget_ranks`` marks a layer
    not worth factorizing); every weight drawn afresh with Haiku's init."""
    model = copy.deepcopy(template)
    torch.manual_seed(seed)  # one stream: the trunk's draws, then each factor's in ``ranks``' order
    haiku_init_(model)  # the trunk and any layer kept dense
    for name, rank in ranks.items():
        if rank is None:
            continue
        linear = model.get_submodule(name)
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"{name!r} is a {type(linear).__name__}, not an nn.Linear: only linears are factorized")
        layer = LowRankLinear(linear.in_features, linear.out_features, rank, bias=linear.bias is not None)
        haiku_normal_(layer.A, linear.in_features)
        haiku_normal_(layer.B, rank)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
        model.set_submodule(name, layer)
    return model


def train_from_scratch(model: nn.Module, datamodule: CIFAR10DataModule, steps: int = RECIPE_STEPS,
                       accelerator: str = "auto", teacher: nn.Module | None = None,
                       seed: int = 0) -> tuple[nn.Module, dict]:
    """The recipe's training of ``model`` (the EMA of its weights returned), distilled from
    ``teacher`` if given; and a record of what was done."""
    model, info = finetune(model, datamodule, steps, seed=seed, accelerator=accelerator, teacher=teacher,
                           averaged_share=None, callbacks=[TakeHomeEMA()])
    return model, {**info, "weights_kept": "EMA (step 0.001, from the init)"}
