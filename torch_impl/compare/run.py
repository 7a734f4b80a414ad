"""One comparison run: check its settings, build the shared context, measure every recipe, write.

``scripts/compare_methods.py`` parses flags and calls these in order; tests call them directly.
Every row is scored and timed through the same functions as the sweep's points
(``torch_impl.measure.sweep``); the dense model's row comes first and its A/A control second.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from torch_impl.artifact import logits_fingerprint, save_compressed
from torch_impl.compare.answers import answers, pareto_front
from torch_impl.compare.points import ROUNDS_FILE, Points, point_name
from torch_impl.compare.recipes import Context, Recipe, run_recipe, zero_share
from torch_impl.compare.recommend import choose, recommendation, recommendation_table
from torch_impl.compare.report import pareto_plot, targets, write_report
from torch_impl.data import CIFAR10DataModule
from torch_impl.files import write_json
from torch_impl.inference import accuracy
from torch_impl.measure.latency import DEFAULT_TIMING, TimingProtocol, batch_sizes_for
from torch_impl.measure.latency_table import LayerRunner, eager_fp32
from torch_impl.measure.results import CONTROL_FAMILY, Result, write_results
from torch_impl.measure.roofline import measure_roofline
from torch_impl.measure.score import control_result, evaluate_into, time_into, timing_summary
from torch_impl.rank_select import DEFAULT_MULTIPLE, cheapest_budget


def check_fold_budget(dense: nn.Module, fold_budget: int) -> None:
    """Fail before any recipe runs if the tightest pool-folded MLP budget cannot be built."""
    if fold_budget < (low := cheapest_budget(dense)):  # fold_pools leaves the MLP as it is
        raise ValueError(f"--fold-budget {fold_budget:,} is below the cheapest MLP the budget rule "
                         f"builds ({low:,} MACs per example, {DEFAULT_MULTIPLE} ranks per layer); raise it")


def select_recipes(recipes: list[Recipe], wanted: str | None) -> list[Recipe]:
    """``default`` (or None): the set that decides (``Recipe.core``: the take-home's SVD points,
    the recipes on the front, the controls); ``all``: every recipe; else the recipes named,
    semicolon-separated (``compare_methods.py --list`` prints them). Unknown names are an error."""
    if wanted is None or wanted.strip() == "default":
        return [r for r in recipes if r.core]
    if wanted.strip() == "all":
        return recipes
    names = [w.strip() for w in wanted.split(";") if w.strip()]
    if unknown := [w for w in names if w not in {r.name for r in recipes}]:
        raise ValueError(f"--recipes names unknown methods {unknown}; `compare_methods.py --list` prints the names, "
                         "or pass default or all")
    return [r for r in recipes if r.name in names]


def make_context(dense: nn.Module, dm: CIFAR10DataModule, calib_images: int, accelerator: str = "cpu",
                 svds: dict | None = None, seed: int = 0, layer_runner: LayerRunner = eager_fp32,
                 layer_runtime: tuple[str, str] = ("eager", "fp32")) -> Context:
    """The dense model, its SVDs (computed once, when a recipe first needs them, unless passed),
    and calibration images drawn from the training split with ``seed`` (``CompareConfig.seed``,
    which the recipes' other draws use too)."""
    train_images = dm.numpy_splits()["train"][0]
    calib_idx = np.random.default_rng(seed).permutation(len(train_images))[:calib_images]
    return Context(dense.eval(), svds, torch.from_numpy(train_images[calib_idx]), dm, accelerator=accelerator,
                   seed=seed, layer_runner=layer_runner, layer_runtime=layer_runtime)


SAVE_CHOICES = ("front", "all", "none")


def _slug(i: int, method: str) -> str:
    return f"{i:02d}-{point_name(method)[:60].rstrip('-')}"


def save_models(entries: list[tuple[Result, nn.Module]], models_dir: Path, which: str = "front",
                test_images: torch.Tensor | None = None) -> list[Path]:
    """Each model of ``which`` rows (``front``: the Pareto front on validation accuracy and
    latency, and the recommended models (``recommend.choose``); ``all``; ``none``) saved with
    ``torch_impl.artifact`` under ``models_dir``; each saved row records its directory as
    ``model_dir`` (relative to ``models_dir``'s parent).
    With ``test_images``, each manifest also holds the fingerprint of the model's logits on
    them (``artifact.logits_fingerprint``), which ``scripts/verify_models.py`` checks."""
    if which not in SAVE_CHOICES:
        raise ValueError(f"--save-models must be one of {SAVE_CHOICES}, got {which!r}")
    results = [r for r, _ in entries]
    front = [*pareto_front(results), *(r for _, r in choose(results) if r is not None)]
    keep = {id(r) for r in front} if which == "front" else (
        {id(r) for r in results if r.family != CONTROL_FAMILY} if which == "all" else set())
    paths = []
    for i, (result, model) in enumerate(entries, 1):
        if id(result) not in keep:
            continue
        directory = models_dir / _slug(i, result.method)
        row = result.to_row()
        metrics = {k: v for k, v in row.items() if k not in result.settings}
        if test_images is not None:
            metrics.update(test_logits_sha256=logits_fingerprint(model, test_images), n_test=len(test_images))
        save_compressed(directory, model, method={k: row.get(k) for k in ("method", "family", *result.settings)},
                        metrics=metrics)
        result.measured["model_dir"] = str(directory.relative_to(models_dir.parent))
        paths.append(directory)
    return paths


def run_comparison(recipes: list[Recipe], ctx: Context, val: tuple[torch.Tensor, torch.Tensor],
                   test: tuple[torch.Tensor, torch.Tensor], progress: bool = True,
                   on_row: Callable[[Result], None] | None = None, roofline: bool = True,
                   models_dir: Path | None = None, save: str = "front", points: Points | None = None,
                   protocol: TimingProtocol = DEFAULT_TIMING) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The dense row, its A/A control, then one row per recipe; returns the rows and the timing
    summary (``score.timing_summary``, plus ``failures``: the recipes that raised, each with its
    error; the others are measured as usual). With ``models_dir``, the ``save`` rows' models are
    written there once measured (``save_models``). With ``points``, each recipe's model is kept
    as soon as it is built and a finished one is loaded instead of built (``compare.points``).

    Each recipe's model is built (its fine-tune sees the training split without the validation
    images), scored on the validation split, where every choice is made, and then on the test
    split once; when all are built, all are timed together in interleaved rounds
    (``torch_impl.measure.latency``) on the test images. ``on_row`` sees each result once scored.
    """
    batch_sizes = batch_sizes_for(len(test[1]))
    dense = Result("dense", "dense", float("nan"))
    dense_val = evaluate_into(dense, ctx.dense, *val, split="val")
    dense_test = evaluate_into(dense, ctx.dense, *test)
    entries = [(dense, ctx.dense), (control_result(dense), copy.deepcopy(ctx.dense))]
    failures: list[dict[str, str]] = []
    for recipe in tqdm(recipes, desc="methods", unit="method", disable=not progress):
        try:
            model, info, macs = build_or_load(recipe, ctx, val, points)
            result = Result.from_row({**info, **zero_share(model), "test_acc": float("nan")})
            evaluate_into(result, model, *val, dense_val, split="val")
            evaluate_into(result, model, *test, dense_test, macs=macs)
        except Exception as err:  # one recipe's bug or bad setting must not cost the others' hours
            failure = points.fail(recipe.name, err) if points else {"method": recipe.name, "error": repr(err)}
            failures.append(failure)
            print(f"FAILED {recipe.name}: {failure['error']} (the run goes on)", file=sys.stderr)
            continue
        entries.append((result, model))
        if on_row is not None:
            on_row(result)
    roof = (measure_roofline(next(ctx.dense.parameters()).device, dense.measured["weight_bytes_read"])
            if roofline else None)
    journal = points.root / ROUNDS_FILE if points is not None else None  # a kill during timing keeps its rounds
    rounds = time_into(entries, test[0], batch_sizes, roof, progress=progress, journal=journal, protocol=protocol)
    if models_dir is not None:
        save_models(entries, models_dir, save, test[0])
    summary = {**timing_summary(rounds, entries[1][0], roof), "failures": failures}
    if points is not None:
        summary["points_loaded"] = list(points.skipped)
    return [r.to_row() for r, _ in entries], summary


def build_or_load(recipe: Recipe, ctx: Context, val: tuple[torch.Tensor, torch.Tensor], points: Points | None
           ) -> tuple[nn.Module, dict[str, Any], dict[str, int]]:
    """The recipe's model, what was done and its MACs per layer: from ``points`` if finished
    there, else built (and kept in ``points``)."""
    if points is not None and (found := points.load(recipe.name)) is not None:
        return found
    model, info = run_recipe(recipe, ctx, evaluate=lambda m: accuracy(m, *val))
    macs = info.pop("macs_by_layer")
    if points is not None:
        try:
            points.save(recipe.name, model, info, macs)
        except (OSError, ValueError) as err:  # the row still counts; only its resumability is lost
            print(f"warning: could not keep {recipe.name} in {points.root} ({err}); a rerun builds it again",
                  file=sys.stderr)
    return model, info, macs


def write_outputs(rows: list[dict[str, Any]], out_dir: Path, meta: dict[str, Any]) -> dict[str, Path]:
    """``compare.csv/json``, ``pareto.png``, ``targets.json``, ``recommended.json`` and
    ``REPORT.md`` in ``out_dir``."""
    csv_path, json_path = write_results(rows, out_dir, meta, stem="compare")
    batch_sizes = tuple(meta["batch_sizes"])
    results = [Result.from_row(r) for r in rows]
    plot = pareto_plot(results, out_dir, batch_sizes)
    verdicts = targets(results)
    write_json(out_dir / "targets.json", verdicts)
    recommended = recommendation(results, out_dir)
    write_json(out_dir / "recommended.json", {
        "rows": recommended, "chosen_on": "validation accuracy; time within the budget at the upper end of its 95% "
                                         "interval (batch 10,000); test accuracy only reported",
        "checkpoint": meta["checkpoint"], "split": meta.get("split"), "provenance": meta["provenance"]})
    report = write_report(out_dir / "REPORT.md", results, batch_sizes, plot, verdicts, answers(results),
                          {**meta["provenance"], "checkpoint": meta["checkpoint"], "timing": meta.get("timing"),
                           "threads": meta["provenance"].get("torch_threads"), "split": meta.get("split")},
                          recommendation_table(recommended))
    return {"table": csv_path, "json": json_path, "plot": plot, "report": report,
            "recommended": out_dir / "recommended.json"}


def rewrite_outputs(out_dir: Path) -> dict[str, Path]:
    """The plot, targets and report again from a finished run's ``compare.json``."""
    path = out_dir / "compare.json"
    if not path.is_file():
        raise FileNotFoundError(f"--report-only needs {path}; run without --report-only first")
    meta = json.loads(path.read_text())
    return write_outputs(meta.pop("rows"), out_dir, meta)
