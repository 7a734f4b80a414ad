"""The compression methods compared by ``scripts/compare_methods.py``, each a recipe.

A recipe builds a compressed model from the trained dense one (never modified), may
fine-tune it (``finetune_steps``) and may quantize the result to int8 last. Recipes are
built lazily, one at a time, so a comparison holds one compressed model in memory.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import nn

from torch_impl.compare.config import CompareConfig
from torch_impl.compare.finetune import finetune, zero_fraction
from torch_impl.compare.from_scratch import INIT_SEED, random_low_rank, train_from_scratch
from torch_impl.compare.nested_rank import NestedRanks, low_rank_layers, truncate
from torch_impl.compare.non_svd import drop_hidden_mlp, magnitude_prune, make_permanent, prune_channels
from torch_impl.compare.pool_fold import fold_pools
from torch_impl.data import CIFAR10DataModule
from torch_impl.data_aware import data_aware_compress, output_spectra
from torch_impl.factorize import compress_model, dynamic_int8
from torch_impl.inference import MLP_CHUNK
from torch_impl.lowrank import model_svds
from torch_impl.measure.cost import count_macs
from torch_impl.measure.latency_table import LayerRunner, eager_fp32
from torch_impl.measure.latency_table import measure as measure_latency
from torch_impl.model import CONV_LAYERS, check_pooling
from torch_impl.rank_select import budget_ranks, energy_ranks, ranks_macs


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
    seed: int = 0  # CompareConfig.seed: every recipe's draws
    layer_runner: LayerRunner = eager_fp32  # how the latency table times a layer (CompareConfig.rank_runtime)
    layer_runtime: tuple[str, str] = ("eager", "fp32")  # (runtime, precision) the runner times in
    shared: dict[str, Any] = field(default_factory=dict)  # what several recipes start from

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()``'s result (a model, a table), made on first use and shared by every recipe asking for ``key``."""
        if key not in self.shared:
            self.shared[key] = make()
        return self.shared[key]

    @cached_property
    def svds(self) -> dict:
        return self.given_svds if self.given_svds is not None else model_svds(self.dense)


Builder = Callable[[Context], tuple[nn.Module, dict[str, Any]]]


@dataclass
class Recipe:
    name: str  # for display only: the report selects rows by ``settings``
    family: str  # groups points on the Pareto plot
    build: Builder
    settings: dict[str, Any]  # what the recipe does, as ``torch_impl.measure.results.SETTING_KEYS`` name it
    finetune_steps: int = 0
    distill: bool = False  # fine-tune from the dense model's soft labels (torch_impl.compare.distill)
    int8: bool = False
    notes: str = ""
    lr_schedule: str = "constant"  # of the fine-tune (torch_impl.lit_module.LR_SCHEDULES)
    # In the default set (``--recipes default``, what ``make run`` compares in its 45 minutes): the
    # take-home's plain-SVD points, the recipes that make the front, and the controls (the
    # dense-sized reconstructed model; the plain and data-aware 2M budgets, identical work). The
    # nested-rank model stays out: its 3,000-step distillation alone takes ~6.5 min on 2 cores,
    # and its rows sat between the recommendation's budgets (docs/results/front/REPORT.md).
    core: bool = False


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
        model, ft = finetune(model, ctx.datamodule, recipe.finetune_steps, seed=ctx.seed, accelerator=ctx.accelerator,
                             teacher=ctx.dense if recipe.distill else None, lr_schedule=recipe.lr_schedule)
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


def _folded(budget: int | None, ranks_from: str = "outputs", conv_ranks: tuple[int, int] | None = None
            ) -> tuple[Builder, dict[str, Any]]:
    """Pools folded into the convolutions (``torch_impl.compare.pool_fold``), then, with ``budget``,
    the MLP under the MAC-budget rule with data-aware factors calibrated on the new trunk.
    ``ranks_from``: what the budget rule weighs, "outputs" (the layers' output variance on the
    calibration images, which is what data-aware factors keep) or "weights" (their spectra).
    ``conv_ranks``: the folded convolutions factorized too (data-aware, before the MLP)."""
    if ranks_from not in ("outputs", "weights"):
        raise ValueError(f"ranks_from must be 'outputs' or 'weights', got {ranks_from!r}")

    def build(ctx: Context) -> tuple[nn.Module, dict]:
        folded = fold_pools(ctx.dense)
        if budget is None:
            return folded, {}
        spectra = output_spectra(folded, ctx.calib_images) if ranks_from == "outputs" else None
        ranks = budget_ranks(folded, budget, layer_spectra=spectra)
        convs = dict(zip(FOLDED_CONV_LAYERS, conv_ranks)) if conv_ranks else {}
        return data_aware_compress(folded, {**convs, **ranks}, ctx.calib_images), {"ranks": dict(ranks)}
    if budget is None:
        return build, {"pool_fold": True}
    return build, {"pool_fold": True, "rule": "budget", "mlp_budget": budget, "data_aware": True,
                   "ranks_from": ranks_from, **({"conv_ranks": dict(zip(FOLDED_CONV_LAYERS, conv_ranks))}
                                                if conv_ranks else {})}


def _by_latency(mac_budget: int) -> tuple[Builder, dict[str, Any]]:
    """Folded pools, then the MLP's ranks spent against this host's measured time
    (``latency_table``, at the MLP's inference chunk, in ``Context.layer_runtime``) instead of
    MACs: the budget is the time the
    MAC rule's ranks at ``mac_budget`` take by the same table, so the two allocations cost the
    same predicted time and differ only in where it goes."""
    def build(ctx: Context) -> tuple[nn.Module, dict]:
        folded = fold_pools(ctx.dense)
        spectra = output_spectra(folded, ctx.calib_images)
        table = ctx.once("latency table", lambda: measure_latency(folded, MLP_CHUNK, runner=ctx.layer_runner,
                                                                   runtime=ctx.layer_runtime[0],
                                                                   precision=ctx.layer_runtime[1]))
        linears = [(n, m) for n, m in folded.named_modules() if isinstance(m, nn.Linear)]
        by_macs = budget_ranks(folded, mac_budget, layer_spectra=spectra)
        seconds = sum(table.cost(by_macs.get(n), m.in_features, m.out_features) for n, m in linears)
        ranks = budget_ranks(folded, seconds, layer_spectra=spectra, cost=table.cost, unit="s per example")
        return data_aware_compress(folded, ranks, ctx.calib_images), {
            "ranks": dict(ranks), "mac_rule_ranks": dict(by_macs), "latency_budget_us": 1e6 * seconds,
            "latency_table_in": " ".join(ctx.layer_runtime)}
    return build, {"pool_fold": True, "rule": "latency", "latency_of_mlp_budget": mac_budget, "data_aware": True}


def _nested(budget: int, fraction: float, steps: int) -> tuple[Builder, dict[str, Any]]:
    """Folded pools and a ``budget``-MAC data-aware MLP, distilled once with nested ranks
    (``torch_impl.compare.nested_rank``, cosine rate), then truncated to ``fraction`` of each layer's
    rank with no further training. Every fraction of one budget shares the one fine-tune."""
    def build(ctx: Context) -> tuple[nn.Module, dict]:
        folded_build, _ = _folded(budget)

        def train() -> nn.Module:
            model, _ = folded_build(ctx)
            model, _ = finetune(model, ctx.datamodule, steps, seed=ctx.seed, accelerator=ctx.accelerator,
                                teacher=ctx.dense, callbacks=[NestedRanks(seed=ctx.seed)], lr_schedule="cosine")
            return model
        nested = ctx.once(f"nested {budget} {steps}", train)
        cut = truncate(nested, fraction)
        ranks = {name: m.rank for name, m in low_rank_layers(cut).items()}
        return cut, {"ranks": ranks, "finetune_steps": steps, "distilled": True, "finetune_schedule": "cosine"}
    return build, {"pool_fold": True, "rule": "budget", "mlp_budget": budget, "data_aware": True,
                   "nested_fraction": fraction}


def _scratch(budget: int, pool_fold: bool, distill: bool, steps: int) -> tuple[Builder, dict[str, Any]]:
    """The ranks the truncating recipe at ``budget`` chooses (the same shapes, so the same
    latency), on a network trained from a random init with the recipe (``from_scratch``)."""
    def build(ctx: Context) -> tuple[nn.Module, dict]:
        template = fold_pools(ctx.dense) if pool_fold else ctx.dense
        spectra = output_spectra(template, ctx.calib_images) if pool_fold else None
        ranks = budget_ranks(template, budget, layer_spectra=spectra, svds=None if pool_fold else ctx.svds)
        model, info = train_from_scratch(random_low_rank(template, ranks, seed=INIT_SEED + ctx.seed), ctx.datamodule,
                                         steps, seed=ctx.seed, accelerator=ctx.accelerator,
                                         teacher=ctx.dense if distill else None)
        return model, {"ranks": dict(ranks), **info}
    return build, {"init": "random", "rule": "budget", "mlp_budget": budget, "distilled": distill,
                   "finetune_steps": steps, **({"pool_fold": True} if pool_fold else {})}


def _drop_hidden() -> tuple[Builder, dict[str, Any]]:
    return lambda ctx: (drop_hidden_mlp(ctx.dense), {}), {"rule": "drop_hidden"}


def _prune(amount: float) -> tuple[Builder, dict[str, Any]]:
    return lambda ctx: (magnitude_prune(ctx.dense, amount, permanent=False), {}), {"pruned": amount}


def _dense() -> tuple[Builder, dict[str, Any]]:
    return lambda ctx: (copy.deepcopy(ctx.dense), {}), {}


# Settings of the recipes that edit the trunk around its nn.AvgPool2d (pools over H and W):
# a network pooling as the take-home's code runs (over W and C) has no such trunk.
SPATIAL_ONLY = ("pool_fold", "channels")
FOLDED_CONV_LAYERS = ("features.0", "features.2")  # the convolutions of fold_pools' trunk
DEFAULT_CONFIG = CompareConfig()
FOLDED_CONV_RANKS = ((8, 16), (12, 24))  # below the folded convs' break-even ranks, 15.4 and 44.7


def default_recipes(config: CompareConfig = DEFAULT_CONFIG) -> list[Recipe]:
    """Every method compared: plain SVD, per-layer rules, data-aware factors, fine-tuning, conv
    compression, and the non-SVD alternatives, plus combinations with int8. The pool-folded
    trunk changes the network most, so its recipes fine-tune longer (``distill_steps``) and
    distill from the dense model; their MAC budgets are spent by the layers' output variance
    (one recipe spends it by the weights' spectra instead, to show the difference).
    Recovery is tried longer (``long_distill_steps``) with a cosine rate, and once with nested ranks:
    one distilled ``nested_budget`` model truncated to each of ``nested_fractions``; and two
    truncated models' shapes are trained from a random init instead (``scratch_steps``).
    For the "haiku" network, the recipes that need spatial pools (``SPATIAL_ONLY``) are left out."""
    c = config
    ft_steps, kd_steps, long_kd_steps = c.finetune_steps, c.distill_steps, c.long_distill_steps
    mlp_budget, tight_budget, fold_budget, nested_budget = c.mlp_budget, c.tight_budget, c.fold_budget, c.nested_budget
    conv_ranks, nested_fractions, scratch_steps, pooling = c.conv_ranks, c.nested_fractions, c.scratch_steps, c.pooling
    recipes = [
        Recipe("SVD f=0.2 reconstructed", "plain SVD", *_uniform(0.2, "reconstructed"), core=True),
        Recipe("SVD f=0.5", "plain SVD", *_uniform(0.5), core=True),
        Recipe("SVD f=0.2", "plain SVD", *_uniform(0.2), core=True),
        Recipe("SVD f=0.1", "plain SVD", *_uniform(0.1), core=True),
        Recipe("energy tau=0.9", "per-layer ranks", *_per_layer("energy", 0.9, False), core=True),
        Recipe("energy tau=0.7", "per-layer ranks", *_per_layer("energy", 0.7, False)),
        Recipe(f"budget {mlp_budget / 1e6:g}M MACs", "per-layer ranks", *_per_layer("budget", mlp_budget, False),
               core=True),
        Recipe(f"budget {mlp_budget / 1e6:g}M, data-aware", "data-aware", *_per_layer("budget", mlp_budget, True),
               core=True),
        Recipe(f"budget {tight_budget / 1e6:g}M MACs", "per-layer ranks", *_per_layer("budget", tight_budget, False)),
        Recipe(f"budget {tight_budget / 1e6:g}M, data-aware", "data-aware",
               *_per_layer("budget", tight_budget, True)),
        Recipe(f"budget {tight_budget / 1e6:g}M, data-aware + FT", "fine-tuned",
               *_per_layer("budget", tight_budget, True), finetune_steps=ft_steps, core=True),
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
               *_folded(mlp_budget), finetune_steps=kd_steps, distill=True, core=True),
        Recipe(f"folded pools + budget {fold_budget / 1e6:g}M, data-aware + KD", "pool folding",
               *_folded(fold_budget), finetune_steps=kd_steps, distill=True, core=True),
        Recipe(f"folded pools + budget {fold_budget / 1e6:g}M, weight-spectrum ranks, data-aware + KD",
               "pool folding", *_folded(fold_budget, "weights"), finetune_steps=kd_steps, distill=True,
               notes="ablation: the same budget spent by the weights' spectra"),
        *(Recipe(f"folded pools + budget {b / 1e6:g}M, data-aware + KD {long_kd_steps}, cosine", "longer recovery",
                 *_folded(b), finetune_steps=long_kd_steps, distill=True, lr_schedule="cosine")
          for b in (mlp_budget, fold_budget)),
        *(Recipe(f"folded pools + convs {c[0]}/{c[1]} + budget {fold_budget / 1e6:g}M, data-aware + KD "
                 f"{long_kd_steps}, cosine", "trunk compressed", *_folded(fold_budget, conv_ranks=c),
                 finetune_steps=long_kd_steps, distill=True, lr_schedule="cosine") for c in FOLDED_CONV_RANKS),
        Recipe(f"folded pools + ranks by measured time (= {fold_budget / 1e6:g}M MACs' time), data-aware + KD "
               f"{long_kd_steps}, cosine", "longer recovery", *_by_latency(fold_budget), finetune_steps=long_kd_steps,
               distill=True, lr_schedule="cosine"),
        *(Recipe(f"folded pools + nested-rank KD {long_kd_steps} ({nested_budget / 1e6:g}M), ranks x{q:g}",
                 "nested ranks", *_nested(nested_budget, q, long_kd_steps),
                 notes="one fine-tune for every fraction, truncated after it")
          for q in nested_fractions),
        Recipe(f"budget {tight_budget / 1e6:g}M ranks, from a random init ({scratch_steps} steps)",
               "low-rank from the start", *_scratch(tight_budget, False, False, scratch_steps),
               notes="the shapes of the truncated model, trained with the recipe instead"),
        Recipe(f"folded pools + budget {fold_budget / 1e6:g}M ranks, from a random init + KD {scratch_steps}",
               "low-rank from the start", *_scratch(fold_budget, True, True, scratch_steps),
               notes="the shapes of the truncated model, trained with the recipe instead"),
        Recipe("no hidden MLP + FT", "non-SVD", *_drop_hidden(), finetune_steps=ft_steps),
        Recipe("prune 90% + FT", "non-SVD", *_prune(0.9), finetune_steps=ft_steps),
        Recipe("dense int8", "non-SVD", *_dense(), int8=True, core=True),
        Recipe(f"budget {mlp_budget / 1e6:g}M, data-aware + int8", "combination",
               *_per_layer("budget", mlp_budget, True), int8=True),
    ]
    if check_pooling(pooling) == "spatial":
        return recipes
    return [r for r in recipes if not any(r.settings.get(k) for k in SPATIAL_ONLY)]


def zero_share(model: nn.Module) -> dict[str, Any]:
    """The zero share of the linear weights (pruning), for the table."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return {"linear_zero_share": zero_fraction(model) if linears else None}
