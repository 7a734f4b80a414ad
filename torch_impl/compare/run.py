"""One comparison run: check its settings, build the shared context, measure every recipe, write.

``scripts/compare_methods.py`` parses flags and calls these in order; tests call them directly.
Every row is measured by ``measure`` through the same harness as the dense model, and the
dense model's own row comes first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from torch_impl.compare.answers import answers
from torch_impl.compare.rank_select import DEFAULT_MULTIPLE, cheapest_budget
from torch_impl.compare.recipes import Context, Recipe, describe, run_recipe
from torch_impl.compare.report import pareto_plot, targets, write_report
from torch_impl.data import CIFAR10DataModule
from torch_impl.inference import accuracy
from torch_impl.lowrank import model_svds
from torch_impl.provenance import write_json
from torch_impl.results import Result
from torch_impl.sweep import measure_into, write_results


def check_fold_budget(dense: nn.Module, fold_budget: int) -> None:
    """Fail before any recipe runs if the tightest pool-folded MLP budget cannot be built."""
    if fold_budget < (low := cheapest_budget(dense)):  # fold_pools leaves the MLP as it is
        raise ValueError(f"--fold-budget {fold_budget:,} is below the cheapest MLP the budget rule "
                         f"builds ({low:,} MACs per example, {DEFAULT_MULTIPLE} ranks per layer); raise it")


def select_recipes(recipes: list[Recipe], only: str | None) -> list[Recipe]:
    """The recipes named in ``only`` (semicolon-separated), or all; unknown names are an error."""
    if not only:
        return recipes
    wanted = [w.strip() for w in only.split(";") if w.strip()]
    if unknown := [w for w in wanted if w not in {r.name for r in recipes}]:
        raise ValueError(f"--only names unknown methods {unknown}; known: {[r.name for r in recipes]}")
    return [r for r in recipes if r.name in wanted]


def make_context(dense: nn.Module, dm: CIFAR10DataModule, calib_images: int, accelerator: str = "cpu") -> Context:
    """The dense model, its SVDs (computed once for every recipe), and calibration images drawn
    from the training split with a fixed seed."""
    train_images = dm.numpy_splits()["train"][0]
    calib_idx = np.random.default_rng(0).permutation(len(train_images))[:calib_images]
    return Context(dense.eval(), model_svds(dense), torch.from_numpy(train_images[calib_idx]), dm,
                   accelerator=accelerator)


def batch_sizes_for(n_test: int) -> list[int]:
    """The two latency batch sizes: the whole test set (at most 10,000) and 1."""
    return [min(10_000, n_test), 1]


def measure(model: nn.Module, dense: nn.Module, images: torch.Tensor, labels: torch.Tensor,
            batch_sizes: list[int], info: dict[str, Any], macs: dict | None = None) -> dict[str, Any]:
    """``sweep.measure_into`` for a recipe's model, with what its recipe recorded (``info``:
    method, family, settings) and the linear weights' zero share, as a row."""
    result = Result.from_row({**info, **describe(model), "test_acc": float("nan")})
    return measure_into(result, model, images, labels, batch_sizes, dense, macs=macs).to_row()


def run_comparison(recipes: list[Recipe], ctx: Context, images: torch.Tensor, labels: torch.Tensor,
                   progress: bool = True, on_row: Callable[[dict[str, Any]], None] | None = None
                   ) -> list[dict[str, Any]]:
    """The dense row, then one row per recipe (``on_row`` sees each as it is measured)."""
    batch_sizes = batch_sizes_for(len(labels))
    evaluate = lambda m: accuracy(m, images, labels)
    rows = [measure(ctx.dense, ctx.dense, images, labels, batch_sizes, {"method": "dense", "family": "dense"})]
    for recipe in tqdm(recipes, desc="methods", unit="method", disable=not progress):
        model, info = run_recipe(recipe, ctx, evaluate)
        macs = info.pop("macs_by_layer")
        rows.append(measure(model, ctx.dense, images, labels, batch_sizes, info, macs))
        if on_row is not None:
            on_row(rows[-1])
    return rows


def write_outputs(rows: list[dict[str, Any]], out_dir: Path, meta: dict[str, Any]) -> dict[str, Path]:
    """``compare.csv/json``, ``pareto.png``, ``targets.json`` and ``REPORT.md`` in ``out_dir``."""
    csv_path, json_path = write_results(rows, out_dir, meta, stem="compare")
    batch_sizes = tuple(meta["batch_sizes"])
    results = [Result.from_row(r) for r in rows]
    plot = pareto_plot(results, out_dir, batch_sizes)
    verdicts = targets(results)
    write_json(out_dir / "targets.json", verdicts)
    report = write_report(out_dir / "REPORT.md", results, batch_sizes, plot, verdicts, answers(results),
                          {**meta["provenance"], "checkpoint": meta["checkpoint"],
                           "threads": meta["provenance"].get("torch_threads")})
    return {"table": csv_path, "json": json_path, "plot": plot, "report": report}


def rewrite_outputs(out_dir: Path) -> dict[str, Path]:
    """The plot, targets and report again from a finished run's ``compare.json``."""
    path = out_dir / "compare.json"
    if not path.is_file():
        raise FileNotFoundError(f"--report-only needs {path}; run without --report-only first")
    meta = json.loads(path.read_text())
    return write_outputs(meta.pop("rows"), out_dir, meta)
