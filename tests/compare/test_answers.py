"""The report's answers find their results by settings and cite their intervals."""

from __future__ import annotations

import pytest

from tests.compare.synthetic import DENSE, synthetic
from torch_impl.compare.answers import answers
from torch_impl.compare.config import CompareConfig
from torch_impl.compare.recipes import default_recipes
from torch_impl.model import LINEAR_LAYERS


def test_the_aa_sentence_reads_every_batch_size() -> None:
    aa = synthetic("dense (A/A control)", "A/A control", 0.70, 1.0, 28e6)
    assert "every interval contains 1.0" in answers([DENSE, aa])[0]
    aa.latency_ratio[1], aa.latency_ratio_lo[1], aa.latency_ratio_hi[1] = 0.97, 0.94, 0.995
    text = answers([DENSE, aa])[0]
    assert "1.000x [0.980, 1.020] at batch 10,000, 0.970x [0.940, 0.995] at batch 1" in text
    assert "excludes 1.0 at batch 1:" in text


def test_answers_compare_where_a_budget_goes() -> None:
    """The weight-spectrum ablation is paired with the output-variance result of the same budget,
    and results that recorded no budget are never paired with each other."""
    fold = dict(pool_fold=True, rule="budget", mlp_budget=1_000_000, data_aware=True)
    results = [DENSE,
               synthetic("X", "pool folding", 0.693, 0.21, 3.5e6, 0.994e6, ranks_from="outputs",
                       ranks={LINEAR_LAYERS[0]: 112}, **fold),
               synthetic("Y", "pool folding", 0.6885, 0.21, 3.5e6, 0.976e6, ranks_from="weights",
                       ranks={LINEAR_LAYERS[0]: 88}, **fold),
               synthetic("P", "x", 0.5, 0.5, 1e6, ranks_from="outputs"), synthetic("Q", "x", 0.5, 0.5, 1e6,
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
        results.append(synthetic(recipe.name, recipe.family, 0.6 + 0.001 * i, 0.2 + 0.03 * i, 1e7, 1e6,
                               **settings, **measured))
    text = " ".join(answers(results))
    assert [c for c in CLAIMS if c not in text] == []
    for budget in (flags.get("mlp_budget", 2_000_000), flags.get("tight_budget", 400_000)):
        assert f"{budget / 1e6:g}M MAC budget: " in text
