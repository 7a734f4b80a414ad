"""The compression methods compared by ``scripts/compare_methods.py``, each a recipe.

A recipe builds a compressed model from the trained dense one (never modified), may
fine-tune it (``finetune_steps``) and may quantize the result to int8 last. Recipes are
built lazily, one at a time, so a comparison holds one compressed model in memory.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import nn

from torch_impl.compare.data_aware import data_aware_compress, output_spectra
from torch_impl.compare.finetune import finetune, zero_fraction
from torch_impl.compare.non_svd import drop_hidden_mlp, dynamic_int8, magnitude_prune, make_permanent, prune_channels
from torch_impl.compare.pool_fold import fold_pools
from torch_impl.compare.rank_select import budget_ranks, energy_ranks, ranks_macs
from torch_impl.cost import count_macs
from torch_impl.data import CIFAR10DataModule
from torch_impl.lowrank import compress_model, model_svds
from torch_impl.model import CONV_LAYERS, DEFAULT_POOLING, check_pooling


@dataclass
class Context:
    """What every recipe may use: the dense model, its SVDs, calibration images, the data.

    ``svds`` is computed on first use (float64 SVDs of every layer take ~15 s on 2 cores), so
    a run whose recipes need none (int8, pruning) or a rerun that loads every finished point
    does not pay for them; pass them in to share one computation."""

    dense: nn.Module
    given_svds: dict | None
    calib_images: torch.Tensor
    datamodule: CIFAR10DataModule
    accelerator: str = "auto"

    @cached_property
    def svds(self) -> dict:
        return self.given_svds if self.given_svds is not None else model_svds(self.dense)


Builder = Callable[[Context], tuple[nn.Module, dict[str, Any]]]


@dataclass
class Recipe:
    name: str  # for display only: the report selects rows by ``settings``
    family: str  # groups points on the Pareto plot
    build: Builder
    settings: dict[str, Any]  # what the recipe does, as ``torch_impl.results.SETTING_KEYS`` name it
    finetune_steps: int = 0
    distill: bool = False  # fine-tune from the dense model's soft labels (torch_impl.compare.distill)
    int8: bool = False
    notes: str = ""


def run_recipe(recipe: Recipe, ctx: Context, evaluate: Callable[[nn.Module], float] | None = None
               ) -> tuple[nn.Module, dict[str, Any]]:
    """The recipe's model (built, fine-tuned, quantized) and what was done, for the table;
    ``evaluate`` (model -> validation accuracy) records the accuracy before fine-tuning."""
    model, info = recipe.build(ctx)
    info = {"method": recipe.name, "family": recipe.family, "notes": recipe.notes, **recipe.settings,
            "int8": recipe.int8, **info}
    if recipe.finetune_steps:
        if evaluate is not None:
            info["val_acc_before_finetune"] = evaluate(model.eval())  # pruning masks apply in forward
        model, ft = finetune(model, ctx.datamodule, recipe.finetune_steps, accelerator=ctx.accelerator,
                             teacher=ctx.dense if recipe.distill else None)
        info.update(ft)
    model = make_permanent(model)
    info["macs_by_layer"] = count_macs(model)  # before int8: quantized layers hide from its hooks
    if recipe.int8:
        model = dynamic_int8(model)
    return model.eval(), info


def _uniform(fraction: float, mode: str = "factorized") -> tuple[Builder, dict[str, Any]]:
    def build(ctx: Context) -> tuple[nn.Module, dict]:
        model, report = compress_model(ctx.dense, rank_fraction=fraction, mode=mode, svds=ctx.svds)
        return model, {"ranks": {r.name: r.rank for r in report}}
    return build, {"rule": "uniform", "rank_fraction": fraction, "mode": mode}


def _per_layer(rule: str, value: float, data_aware: bool, conv_ranks: dict[str, int] | None = None
               ) -> tuple[Builder, dict[str, Any]]:
    def build(ctx: Context) -> tuple[nn.Module, dict]:
        ranks = (energy_ranks(ctx.dense, value, svds=ctx.svds) if rule == "energy"
                 else budget_ranks(ctx.dense, int(value), svds=ctx.svds))
        info = {"ranks": dict(ranks), "mlp_macs_budgeted": ranks_macs(ctx.dense, ranks)}
        if data_aware:
            all_ranks = {**(conv_ranks or {}), **ranks}  # module order: convs first
            return data_aware_compress(ctx.dense, all_ranks, ctx.calib_images), info
        if conv_ranks:
            raise ValueError("conv compression is done data-aware here; pass data_aware=True")
        model, _ = compress_model(ctx.dense, ranks=ranks, svds=ctx.svds)
        return model, info
    value_key = "energy" if rule == "energy" else "mlp_budget"
    return build, {"rule": rule, value_key: value, "data_aware": data_aware, "conv_ranks": conv_ranks}


def _channels(keep1: int, keep2: int, budget: int) -> tuple[Builder, dict[str, Any]]:
    """Structured channel pruning of the convolutions, then the MAC-budget rule, data-aware."""
    def build(ctx: Context) -> tuple[nn.Module, dict]:
        pruned = prune_channels(ctx.dense, keep1, keep2)
        ranks = budget_ranks(pruned, budget)
        return data_aware_compress(pruned, ranks, ctx.calib_images), {"ranks": dict(ranks)}
    return build, {"rule": "budget", "mlp_budget": budget, "data_aware": True, "channels": [keep1, keep2]}


def _folded(budget: int | None, ranks_from: str = "outputs") -> tuple[Builder, dict[str, Any]]:
    """Pools folded into the convolutions (``torch_impl.compare.pool_fold``), then, with ``budget``,
    the MLP under the MAC-budget rule with data-aware factors calibrated on the new trunk.
    ``ranks_from``: what the budget rule weighs, "outputs" (the layers' output variance on the
    calibration images, which is what data-aware factors keep) or "weights" (their spectra)."""
    if ranks_from not in ("outputs", "weights"):
        raise ValueError(f"ranks_from must be 'outputs' or 'weights', got {ranks_from!r}")

    def build(ctx: Context) -> tuple[nn.Module, dict]:
        folded = fold_pools(ctx.dense)
        if budget is None:
            return folded, {}
        spectra = output_spectra(folded, ctx.calib_images) if ranks_from == "outputs" else None
        ranks = budget_ranks(folded, budget, layer_spectra=spectra)
        return data_aware_compress(folded, ranks, ctx.calib_images), {"ranks": dict(ranks)}
    if budget is None:
        return build, {"pool_fold": True}
    return build, {"pool_fold": True, "rule": "budget", "mlp_budget": budget, "data_aware": True,
                   "ranks_from": ranks_from}


def _drop_hidden() -> tuple[Builder, dict[str, Any]]:
    return lambda ctx: (drop_hidden_mlp(ctx.dense), {}), {"rule": "drop_hidden"}


def _prune(amount: float) -> tuple[Builder, dict[str, Any]]:
    return lambda ctx: (magnitude_prune(ctx.dense, amount, permanent=False), {}), {"pruned": amount}


def _dense() -> tuple[Builder, dict[str, Any]]:
    return lambda ctx: (copy.deepcopy(ctx.dense), {}), {}


# Settings of the recipes that edit the trunk around its nn.AvgPool2d (pools over H and W):
# a network pooling as the take-home's code runs (over W and C) has no such trunk.
SPATIAL_ONLY = ("pool_fold", "channels")


def default_recipes(ft_steps: int = 400, mlp_budget: int = 2_000_000, tight_budget: int = 400_000,
                    conv_ranks: dict[str, int] | None = None, kd_steps: int = 1500,
                    fold_budget: int = 1_000_000, pooling: str = DEFAULT_POOLING) -> list[Recipe]:
    """Every method compared: plain SVD, per-layer rules, data-aware factors, fine-tuning, conv
    compression, and the non-SVD alternatives, plus combinations with int8. The pool-folded
    trunk changes the network most, so its recipes fine-tune longer (``kd_steps``) and
    distill from the dense model; their MAC budgets are spent by the layers' output variance
    (one recipe spends it by the weights' spectra instead, to show the difference).
    For the "haiku" network, the recipes that need spatial pools (``SPATIAL_ONLY``) are left out."""
    conv_ranks = conv_ranks or {CONV_LAYERS[0]: 8, CONV_LAYERS[1]: 16}
    recipes = [
        Recipe("SVD f=0.2 reconstructed", "plain SVD", *_uniform(0.2, "reconstructed")),
        Recipe("SVD f=0.5", "plain SVD", *_uniform(0.5)),
        Recipe("SVD f=0.2", "plain SVD", *_uniform(0.2)),
        Recipe("SVD f=0.1", "plain SVD", *_uniform(0.1)),
        Recipe("energy tau=0.9", "per-layer ranks", *_per_layer("energy", 0.9, False)),
        Recipe("energy tau=0.7", "per-layer ranks", *_per_layer("energy", 0.7, False)),
        Recipe(f"budget {mlp_budget / 1e6:g}M MACs", "per-layer ranks", *_per_layer("budget", mlp_budget, False)),
        Recipe(f"budget {mlp_budget / 1e6:g}M, data-aware", "data-aware", *_per_layer("budget", mlp_budget, True)),
        Recipe(f"budget {tight_budget / 1e6:g}M MACs", "per-layer ranks", *_per_layer("budget", tight_budget, False)),
        Recipe(f"budget {tight_budget / 1e6:g}M, data-aware", "data-aware",
               *_per_layer("budget", tight_budget, True)),
        Recipe(f"budget {tight_budget / 1e6:g}M, data-aware + FT", "fine-tuned",
               *_per_layer("budget", tight_budget, True), finetune_steps=ft_steps),
        Recipe(f"convs {conv_ranks[CONV_LAYERS[0]]}/{conv_ranks[CONV_LAYERS[1]]} + budget "
               f"{tight_budget / 1e6:g}M, data-aware + FT", "conv + MLP low-rank",
               *_per_layer("budget", tight_budget, True, conv_ranks), finetune_steps=ft_steps),
        Recipe(f"convs {conv_ranks[CONV_LAYERS[0]]}/{conv_ranks[CONV_LAYERS[1]]} + budget "
               f"{tight_budget / 1e6:g}M, data-aware + FT + int8", "combination",
               *_per_layer("budget", tight_budget, True, conv_ranks), finetune_steps=ft_steps, int8=True),
        Recipe(f"channels 10/32 + budget {tight_budget / 1e6:g}M, data-aware + FT", "channel pruning",
               *_channels(10, 32, tight_budget), finetune_steps=ft_steps),
        Recipe(f"channels 8/24 + budget {tight_budget / 1e6:g}M, data-aware + FT + int8", "channel pruning",
               *_channels(8, 24, tight_budget), finetune_steps=ft_steps, int8=True),
        Recipe("folded pools + KD", "pool folding", *_folded(None), finetune_steps=kd_steps, distill=True),
        Recipe(f"folded pools + budget {mlp_budget / 1e6:g}M, data-aware + KD", "pool folding",
               *_folded(mlp_budget), finetune_steps=kd_steps, distill=True),
        Recipe(f"folded pools + budget {fold_budget / 1e6:g}M, data-aware + KD", "pool folding",
               *_folded(fold_budget), finetune_steps=kd_steps, distill=True),
        Recipe(f"folded pools + budget {fold_budget / 1e6:g}M, weight-spectrum ranks, data-aware + KD",
               "pool folding", *_folded(fold_budget, "weights"), finetune_steps=kd_steps, distill=True,
               notes="ablation: the same budget spent by the weights' spectra"),
        Recipe("no hidden MLP + FT", "non-SVD", *_drop_hidden(), finetune_steps=ft_steps),
        Recipe("prune 90% + FT", "non-SVD", *_prune(0.9), finetune_steps=ft_steps),
        Recipe("dense int8", "non-SVD", *_dense(), int8=True),
        Recipe(f"budget {mlp_budget / 1e6:g}M, data-aware + int8", "combination",
               *_per_layer("budget", mlp_budget, True), int8=True),
    ]
    if check_pooling(pooling) == "spatial":
        return recipes
    return [r for r in recipes if not any(r.settings.get(k) for k in SPATIAL_ONLY)]


def describe(model: nn.Module) -> dict[str, Any]:
    """The zero share of the linear weights (pruning), for the table."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return {"linear_zero_share": zero_fraction(model) if linears else None}
