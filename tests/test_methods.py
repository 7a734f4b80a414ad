"""Every compression recipe builds a model that runs and keeps its shapes; the alternatives behave."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import learnable_images, write_image_folder
from torch_impl.checkpoint import save_model
from torch_impl.compare import recipes as recipes_module
from torch_impl.compare.answers import answers, pareto_front
from torch_impl.compare.config import CompareConfig
from torch_impl.compare.finetune import zero_fraction
from torch_impl.compare.latency_table import measure
from torch_impl.compare.non_svd import (
    drop_hidden_mlp,
    dynamic_int8,
    lowrank_as_linears,
    magnitude_prune,
    prune_channels,
)
from torch_impl.compare.points import Points
from torch_impl.compare.recipes import Context, default_recipes, run_recipe
from torch_impl.compare.report import targets
from torch_impl.data import CIFAR10DataModule
from torch_impl.lowrank import compress_model
from torch_impl.measure.results import Result
from torch_impl.model import LINEAR_LAYERS, SMALL_WIDTHS, build_model

ROOT = Path(__file__).resolve().parent.parent
INT8_RTOL = 0.1  # int8 weights: logits agree to ~1-5% of their spread, not to fp32 round-off
SAME_FUNCTION_TOL = 1e-5  # one function rebuilt in other modules: measured 0 on an Intel Xeon


def make_ctx(tmp_path_factory, net_and_svds) -> Context:
    root = write_image_folder(tmp_path_factory.mktemp("cifar"), n_train=4, n_test=2)
    dm = CIFAR10DataModule(str(root), str(root / "cache"), batch_size=8, val_fraction=0.0)
    return Context(*net_and_svds, torch.from_numpy(learnable_images(6, seed=5)[0]), dm, "cpu")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, net_svds) -> Context:
    """The small network's: every recipe's code runs the same on it."""
    return make_ctx(tmp_path_factory, net_svds)


@pytest.fixture(scope="module")
def full_ctx(tmp_path_factory, full_net_svds) -> Context:
    return make_ctx(tmp_path_factory, full_net_svds)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.from_numpy(learnable_images(2, seed=9)[0])


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


# Ranks chosen by measured time need a network whose low-rank layers can be faster than its dense
# ones: on the small network per-call overhead dominates, and the time budget is infeasible.
FULL_SIZE_ONLY = {"folded pools + ranks by measured time (= 1M MACs' time), data-aware + KD 3, cosine"}


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in RECIPES if n not in SAME_PATH_AS_ANOTHER])
def test_recipe_runs_and_keeps_its_shapes(request, images: torch.Tensor, name: str, tmp_path: Path,
                                          monkeypatch) -> None:
    recipe = RECIPES[name]
    ctx = request.getfixturevalue("full_ctx" if name in FULL_SIZE_ONLY else "ctx")
    # The measured-latency table at its real settings times ~45 matmuls for 0.2 s each (~85 s
    # here); its measurement is tested in test_latency_table, so here the table is a quick one.
    monkeypatch.setattr(recipes_module, "measure_latency", lambda model, batch: measure(model, 16, min_run_s=0.001))
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


@pytest.mark.slow
def test_pruning_zeroes_the_share_asked_for(ctx: Context) -> None:
    pruned = magnitude_prune(ctx.dense, 0.9)
    assert zero_fraction(pruned) == pytest.approx(0.9, abs=1e-3)
    assert zero_fraction(ctx.dense) == 0.0
    with pytest.raises(ValueError, match=r"amount .* must be in \[0, 1\)"):
        magnitude_prune(ctx.dense, 1.0)


@pytest.mark.slow
def test_int8_tracks_the_float_model(ctx: Context, images: torch.Tensor) -> None:
    low, _ = compress_model(ctx.dense, rank_fraction=0.5, svds=ctx.svds)
    split = lowrank_as_linears(low)  # the same function as two nn.Linear
    with torch.inference_mode():
        ref = low(images)
        torch.testing.assert_close(split(images), ref, atol=SAME_FUNCTION_TOL, rtol=SAME_FUNCTION_TOL)
        q = dynamic_int8(low)(images)
    assert (q - ref).abs().max() <= INT8_RTOL * (ref.max() - ref.min())


@pytest.mark.slow
def test_channel_pruning_keeping_every_channel_is_the_identity(ctx: Context, images: torch.Tensor) -> None:
    same = prune_channels(ctx.dense, 18, 48)
    with torch.inference_mode():
        torch.testing.assert_close(same(images), ctx.dense(images), atol=SAME_FUNCTION_TOL, rtol=SAME_FUNCTION_TOL)
    small = prune_channels(ctx.dense, 8, 24)
    assert small.features[4].weight.shape == (24, 8, 5, 5) and small.classifier[0].in_features == 64 * 24
    assert small(images).shape == (len(images), 10)
    with pytest.raises(ValueError, match="keep_conv1 must be in"):
        prune_channels(ctx.dense, 0, 24)


@pytest.mark.slow
def test_smaller_head_has_the_right_shape(ctx: Context, images: torch.Tensor) -> None:
    small = drop_hidden_mlp(ctx.dense)
    linears = [m for m in small.classifier.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3072, 10)]
    assert small(images).shape == (len(images), 10)


def _result(method: str, family: str, acc: float, ratio: float, macs: float, mlp: float = 0.0, **settings) -> Result:
    """A synthetic row: validation accuracy ``acc``, test accuracy 1 pp below it, the ratio
    +-2% at both batch sizes, and a test difference to dense (0.69) with a +-0.5 pp interval."""
    measured = {k: settings.pop(k) for k in ("val_acc_before_finetune", "ranks", "linear_zero_share") if k in settings}
    test = acc - 0.01
    if family != "dense":
        measured.update(test_diff=test - 0.69, test_diff_lo=test - 0.695, test_diff_hi=test - 0.685,
                        test_mcnemar_p=0.5 if abs(test - 0.69) < 0.003 else 0.001)
    both = lambda v: {10_000: v, 1: v}
    return Result(method, family, test, latency_us={10_000: 100 * ratio, 1: 1000 * ratio},
                  latency_iqr_us=both(1.0), latency_ratio=both(ratio), latency_ratio_lo=both(0.98 * ratio),
                  latency_ratio_hi=both(1.02 * ratio), val_acc=acc, total_macs=int(macs), mlp_macs=int(mlp),
                  params=1, settings=settings, measured=measured)


DENSE = _result("dense", "dense", 0.70, 1.0, 28e6, 21.2e6)


def test_report_helpers_on_synthetic_results() -> None:
    svd = [_result(f"SVD f={f}", "plain SVD", acc, ratio, macs, rule="uniform", mode="factorized", rank_fraction=f)
           for f, acc, ratio, macs in ((0.5, 0.66, 0.8, 26e6), (0.2, 0.40, 0.6, 15e6), (0.1, 0.19, 0.5, 11e6))]
    results = [DENSE, _result("folded pools + KD", "pool folding", 0.68, 0.77, 23.7e6, 21.2e6, pool_fold=True,
                              finetune_steps=3, val_acc_before_finetune=0.58), *svd,
               _result("A", "x", 0.698, 0.55, 8e6), _result("B", "x", 0.69, 0.2, 2e6)]
    assert [r.method for r in pareto_front(results)] == ["B", "A", "dense"]
    v = targets(results)
    assert v["at_svd_0.2_latency"]["best"] == "A" and v["at_svd_0.2_latency"]["met"]
    assert v["at_25pct_latency"]["best"] == "B" and v["at_25pct_latency"]["met"]
    text = " ".join(answers(results))
    assert "SVD f=0.2: 39.00% (-30.00 pp [-30.50, -29.50], p = 0.001)" in text
    assert "B at 0.200x [0.196, 0.204] dense time, validation 69.00%, test 68.00%" in text
    assert "trunk 6.80 M -> 2.50 M MACs" in text and "validation 58.00% before and 68.00% after" in text
    rows = [r.to_row() for r in results]  # what compare.json holds reads back the same
    assert [Result.from_row(r) for r in rows] == results


def test_the_aa_sentence_reads_every_batch_size() -> None:
    aa = _result("dense (A/A control)", "A/A control", 0.70, 1.0, 28e6)
    assert "every interval contains 1.0" in answers([DENSE, aa])[0]
    aa.latency_ratio[1], aa.latency_ratio_lo[1], aa.latency_ratio_hi[1] = 0.97, 0.94, 0.995
    text = answers([DENSE, aa])[0]
    assert "1.000x [0.980, 1.020] at batch 10,000, 0.970x [0.940, 0.995] at batch 1" in text
    assert "excludes 1.0 at batch 1:" in text


def test_selection_reads_no_test_number() -> None:
    """The front and the targets' rows are the same whatever the test numbers say (here: none)."""
    results = [DENSE, _result("A", "x", 0.698, 0.55, 8e6), _result("B", "x", 0.69, 0.2, 2e6),
               _result("C", "x", 0.60, 0.15, 1e6), _result("D", "x", 0.699, 0.7, 1e7)]
    blind = [copy.deepcopy(r) for r in results]
    for r in blind:
        r.test_acc = float("nan")
        r.measured = {k: (float("nan") if k.startswith("test_") else v) for k, v in r.measured.items()}
    assert [r.method for r in pareto_front(blind)] == [r.method for r in pareto_front(results)] == [
        "C", "B", "A", "D", "dense"]
    seen, blind_seen = targets(results), targets(blind)
    def chosen(t: dict) -> dict:
        rows = {k: v["best"] for k, v in t.items() if isinstance(v, dict) and k != "frontier"}
        for name, v in t["frontier"].items():
            for key in ("chosen", "fastest_within_line_on_validation"):
                rows[f"{name} {key}"] = (v[key] or {}).get("method")
        return rows
    assert chosen(seen) == chosen(blind_seen) and chosen(seen)["A chosen"] == "B"
    assert seen["at_25pct_latency"]["best"] == "B" and seen["fastest_within_1.5pp_on_validation"]["best"] == "B"


def test_a_target_is_judged_on_the_test_interval() -> None:
    """Chosen on validation (69.8%), the row scores -2.0 pp on test: the 1.5 pp line is missed,
    beyond doubt when the interval misses it too."""
    row = _result("E", "x", 0.70, 0.2, 1e6)
    row.measured.update(test_diff=-0.02, test_diff_lo=-0.027, test_diff_hi=-0.016)
    v = targets([DENSE, row])["at_25pct_latency"]
    assert v["best"] == "E" and not v["met"] and v["decided"] == "beyond the line with 95% confidence"
    row.measured.update(test_diff_hi=-0.01)
    assert targets([DENSE, row])["at_25pct_latency"]["decided"] == "the interval straddles the line"


def test_answers_compare_where_a_budget_goes() -> None:
    """The weight-spectrum ablation is paired with the output-variance result of the same budget,
    and results that recorded no budget are never paired with each other."""
    fold = dict(pool_fold=True, rule="budget", mlp_budget=1_000_000, data_aware=True)
    results = [DENSE,
               _result("X", "pool folding", 0.693, 0.21, 3.5e6, 0.994e6, ranks_from="outputs",
                       ranks={LINEAR_LAYERS[0]: 112}, **fold),
               _result("Y", "pool folding", 0.6885, 0.21, 3.5e6, 0.976e6, ranks_from="weights",
                       ranks={LINEAR_LAYERS[0]: 88}, **fold),
               _result("P", "x", 0.5, 0.5, 1e6, ranks_from="outputs"), _result("Q", "x", 0.5, 0.5, 1e6,
                                                                                ranks_from="weights")]
    text = " ".join(answers(results))
    assert ("X: ranks from the layers' output variance {'classifier.0': 112} give validation 69.30%, ranks from "
            "the weights' spectra {'classifier.0': 88} 68.85% (0.99 vs 0.98 M MLP MACs)") in text, text
    assert "P:" not in text


CLAIMS = ("**Accuracy vs rank", "**Replacing each weight", "**Time vs rank", "**Which method wins",
          "**Data-aware vs plain", "**Recovery fine-tuning", "**Folding each average pool", "**Where a MAC budget",
          "**Magnitude pruning", "**Longer recovery", "**Ranks spent by measured time", "**One nested-rank model",
          "**Low-rank from the start")


@pytest.mark.parametrize("flags", [{}, {"mlp_budget": 3_000_000, "tight_budget": 500_000, "fold_budget": 1_500_000},
                                   {"mlp_budget": 1_234_567, "tight_budget": 250_000, "finetune_steps": 7}])
def test_budget_flags_never_drop_a_claim(flags: dict) -> None:
    """Every answer finds its results by their settings, whatever the budgets are called."""
    results = [DENSE]
    for i, recipe in enumerate(default_recipes(CompareConfig(**flags))):
        settings = {**recipe.settings, "int8": recipe.int8}
        measured = {}
        if recipe.finetune_steps:
            settings.update(finetune_steps=recipe.finetune_steps, finetune_schedule=recipe.lr_schedule)
            measured["val_acc_before_finetune"] = 0.5
        if "pruned" in settings:
            measured["linear_zero_share"] = settings["pruned"]
        results.append(_result(recipe.name, recipe.family, 0.6 + 0.001 * i, 0.2 + 0.03 * i, 1e7, 1e6,
                               **settings, **measured))
    text = " ".join(answers(results))
    assert [c for c in CLAIMS if c not in text] == []
    for budget in (flags.get("mlp_budget", 2_000_000), flags.get("tight_budget", 400_000)):
        assert f"{budget / 1e6:g}M MAC budget: " in text


def _compare_script():
    spec = importlib.util.spec_from_file_location("compare_methods", ROOT / "scripts" / "compare_methods.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_script_rejects_a_fold_budget_below_the_cheapest_mlp(image_tree: Path, cache_dir: Path,
                                                                      tmp_path: Path) -> None:
    """Checked before any recipe runs: the budget rule would otherwise fail half an hour in."""
    ckpt = save_model(tmp_path / "model.pt", build_model(0, widths=SMALL_WIDTHS))
    args = ["--checkpoint", str(ckpt), "--data-dir", str(image_tree), "--cache-dir", str(cache_dir),
            "--out-dir", str(tmp_path / "out"), "--fold-budget", "5"]
    with pytest.raises(SystemExit, match=r"--fold-budget 5 is below the cheapest MLP .* \(28,736 MACs"):
        _compare_script().main(args)
    assert not (tmp_path / "out").exists()
