"""Every compression recipe builds a model that runs and keeps its shapes; the alternatives behave."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from torch_impl.compare import recipes as recipes_module
from torch_impl.compare.config import CompareConfig
from torch_impl.compare.finetune import zero_fraction
from torch_impl.compare.points import Points
from torch_impl.compare.recipes import Context, default_recipes, run_recipe
from torch_impl.measure.latency_table import LatencyTable, rank_grid

TINY_STEPS = CompareConfig(finetune_steps=2, distill_steps=3, long_distill_steps=3, scratch_steps=3)
RECIPES = {r.name: r for r in default_recipes(TINY_STEPS)}
# Recipes that differ from one tested here only by a number (a fraction, a threshold, a
# budget, channel counts) or by an option whose code another tested recipe runs (ranks from
# the weights' spectra: the plain budget rule's) run the same code; each path is tested once.
SAME_PATH_AS_ANOTHER = {"SVD f=0.5", "SVD f=0.1", "energy tau=0.7", "budget 2M MACs", "budget 2M, data-aware",
                        "folded pools + budget 1M, data-aware + KD 3, cosine",
                        "folded pools + convs 8/16 + budget 1M, data-aware + KD 3, cosine",
                        "folded pools + nested-rank KD 3 (4M), ranks x1",
                        "folded pools + budget 1M, weight-spectrum ranks, data-aware + KD",
                        "channels 10/32 + budget 0.4M, data-aware + FT",
                        "folded pools + nested-rank KD 3 (4M), ranks x0.25"}


def mac_proportional_table(model: nn.Module, batch_size: int, **_) -> LatencyTable:
    """A latency table whose times are proportional to MACs, for every linear shape of ``model``.
    The recipe that spends ranks by measured time then runs its code deterministically on the
    small network (whose per-call overhead would swamp real timings); the measurement itself is
    tested in test_latency_table."""
    table = LatencyTable(batch_size)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            i, o = m.in_features, m.out_features
            table.dense[(i, o)] = i * o * 1e-12
            table.factorized[(i, o)] = {r: r * (i + o) * 1e-12 for r in rank_grid(i, o)}
    return table


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in RECIPES if n not in SAME_PATH_AS_ANOTHER])
def test_recipe_runs_and_keeps_its_shapes(ctx: Context, images: torch.Tensor, name: str, tmp_path: Path,
                                          monkeypatch) -> None:
    recipe = RECIPES[name]
    monkeypatch.setattr(recipes_module, "measure_latency", mac_proportional_table)
    before = {k: v.clone() for k, v in ctx.dense.state_dict().items()}
    model, info = run_recipe(recipe, ctx, evaluate=lambda m: 0.5)
    with torch.inference_mode():
        logits = model(images)
    assert logits.shape == (len(images), 10) and torch.isfinite(logits).all()
    assert info["method"] == recipe.name and info["macs_by_layer"]
    if recipe.finetune_steps:
        assert info["finetune_steps"] == (3 if recipe.distill else 2) and info["val_acc_before_finetune"] == 0.5
        assert info["distilled"] == recipe.distill and info["finetune_schedule"] == recipe.lr_schedule
    if recipe.settings.get("init") == "random":  # the recipe's training, the EMA of its weights kept
        assert info["finetune_steps"] == 3 and info["weights_kept"].startswith("EMA") and info["ranks"]
        assert info["distilled"] == recipe.settings["distilled"]
    if "nested_fraction" in recipe.settings:  # one nested fine-tune, then truncated
        assert info["finetune_steps"] == 3 and info["finetune_schedule"] == "cosine" and info["ranks"]
    if info.get("pruned"):  # the mask held through the fine-tune
        assert zero_fraction(model) == pytest.approx(info["pruned"], abs=1e-3)
    for k, v in ctx.dense.state_dict().items():  # the dense model is never modified
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    points = Points(tmp_path, {})  # a comparison keeps every recipe's model as a point, and reloads it
    points.save(name, model, {k: v for k, v in info.items() if k != "macs_by_layer"}, info["macs_by_layer"])
    reloaded, _, macs = points.load(name)
    with torch.inference_mode():
        assert torch.equal(reloaded(images), logits) and macs == info["macs_by_layer"]


