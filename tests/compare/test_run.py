"""One comparison end to end on a tiny image tree: every row is scored on validation, then on
test, all are timed together with the A/A control, and choices see validation numbers only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import write_image_folder
from tests.helpers import load_script, save_trained
from torch_impl.artifact import load_compressed, logits_fingerprint
from torch_impl.compare import run as compare_run
from torch_impl.compare.config import CompareConfig
from torch_impl.compare.recipes import default_recipes
from torch_impl.compare.recommend import recommendation_table
from torch_impl.compare.run import make_context, run_comparison, select_recipes, write_outputs
from torch_impl.data import CIFAR10DataModule
from torch_impl.inference import accuracy
from torch_impl.measure.latency import TimingProtocol
from torch_impl.measure.results import CONTROL_FAMILY, Result
from torch_impl.model import SMALL_WIDTHS, build_model

RECIPES = "SVD f=0.2;budget 0.4M, data-aware + FT;dense int8"


@pytest.mark.slow
def test_comparison_scores_validation_then_test_and_times_everything(tmp_path: Path, monkeypatch, net_svds) -> None:
    root = write_image_folder(tmp_path / "cifar", n_train=8, n_test=2)
    dm = CIFAR10DataModule(str(root), str(tmp_path / "cache"), batch_size=8, val_fraction=0.25)
    splits = {k: tuple(torch.from_numpy(a) for a in v) for k, v in dm.numpy_splits().items()}
    ctx = make_context(net_svds[0], dm, calib_images=16, svds=net_svds[1])
    val_set = {a.tobytes() for a in splits["val"][0].numpy()}
    assert not any(img.tobytes() in val_set for img in ctx.calib_images.numpy())  # calibration: training only
    assert not any(img.tobytes() in val_set for img in dm.numpy_splits()["train"][0])  # so is the fine-tune
    scored_on = []
    real_accuracy = compare_run.accuracy
    monkeypatch.setattr(compare_run, "accuracy", lambda m, images, labels: scored_on.append(images) or
                        real_accuracy(m, images, labels))
    recipes = select_recipes(default_recipes(CompareConfig(finetune_steps=2)), RECIPES)
    rows, timing = run_comparison(recipes, ctx, splits["val"], splits["test"], progress=False,
                                  protocol=TimingProtocol(min_rounds=3, max_rounds=3),
                                  models_dir=tmp_path / "out" / "models", save="all")
    assert scored_on and all(images is splits["val"][0] for images in scored_on)  # before-fine-tune score
    results = [Result.from_row(r) for r in rows]
    assert [r.family for r in results[:2]] == ["dense", CONTROL_FAMILY]
    assert [r.method for r in results[2:]] == RECIPES.split(";")
    n_test = len(splits["test"][1])
    for r in results:
        assert 0 <= r.val_acc <= 1 and 0 <= r.test_acc <= 1
        assert r.latency_ratio_lo[n_test] <= r.latency_ratio[n_test] <= r.latency_ratio_hi[n_test]
        assert r.get(f"roofline_fraction_b{n_test}") > 0
    for r in results[2:]:
        assert r.get("test_diff_lo") <= r.get("test_diff") <= r.get("test_diff_hi")
        assert 0 < r.get("test_mcnemar_p") <= 1 and r.get("val_diff") is not None
    int8 = results[-1]
    assert int8.params == results[0].params and int8.bytes < results[0].bytes / 3  # one byte per weight
    assert timing["rounds"]["rounds"] == 3 and "interval" in timing["aa_control"]
    meta = {"batch_sizes": [n_test, 1], "checkpoint": "x", "timing": timing,
            "provenance": {"command": "test", "git_commit": "abc", "device": "cpu", "torch_threads": 2}}
    paths = write_outputs(rows, tmp_path / "out", meta)
    report = paths["report"].read_text()
    assert "A/A control" in report and "chosen on validation" in report and "McNemar" in report
    recommended = json.loads(paths["recommended"].read_text())["rows"]
    assert report.splitlines()[2] == "## Recommendation (`recommended.json`)"  # the answer comes first
    assert recommendation_table(recommended) in report and len(recommended) == 3
    assert np.isfinite(paths["plot"].stat().st_size)
    for r in [results[0], *results[2:]]:  # every model saved, linked from the report, reloaded as it predicted
        assert f"]({r.get('model_dir')})" in report
        model, manifest = load_compressed(tmp_path / "out" / r.get("model_dir"))
        assert manifest["method"]["method"] == r.method and manifest["metrics"]["test_acc"] == r.test_acc
        assert accuracy(model, *splits["test"]) == pytest.approx(r.test_acc, abs=0.5 / n_test)  # same count
        assert logits_fingerprint(model, splits["test"][0]) == manifest["metrics"]["test_logits_sha256"]
    assert results[1].get("model_dir") is None  # the A/A control is the dense model again
    verify = load_script("verify_models")
    dirs = [str(tmp_path / "out" / r.get("model_dir")) for r in [results[0], *results[2:]]]
    checked = verify.main([*dirs, "--data-dir", str(root), "--cache-dir", str(tmp_path / "cache")])
    assert [c["identical"] for c in checked] == [True] * len(dirs)


def test_recipe_sets_default_all_and_names() -> None:
    recipes = default_recipes()
    core = select_recipes(recipes, "default")
    assert core == select_recipes(recipes, None) and 0 < len(core) < len(recipes)
    names = {r.name for r in core}
    assert {"SVD f=0.5", "SVD f=0.2", "SVD f=0.1", "SVD f=0.2 reconstructed", "dense int8"} <= names
    assert select_recipes(recipes, "all") == recipes
    assert [r.name for r in select_recipes(recipes, "SVD f=0.1; dense int8")] == ["SVD f=0.1", "dense int8"]
    with pytest.raises(ValueError, match=r"unknown methods \['SVD f=0.3'\]; `compare_methods.py --list`"):
        select_recipes(recipes, "SVD f=0.3")


def test_list_prints_every_recipe_and_marks_the_default_set(capsys) -> None:
    assert load_script("compare_methods").main(["--list"]) == []
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(default_recipes()) and "* SVD f=0.2" in lines and "  prune 90% + FT" in lines


def test_compare_script_rejects_a_fold_budget_below_the_cheapest_mlp(image_tree: Path, cache_dir: Path,
                                                                      tmp_path: Path) -> None:
    """Checked before any recipe runs: the budget rule would otherwise fail half an hour in."""
    ckpt = save_trained(tmp_path / "model.pt", build_model(0, widths=SMALL_WIDTHS), n_images=60)
    args = ["--checkpoint", str(ckpt), "--data-dir", str(image_tree), "--cache-dir", str(cache_dir),
            "--out-dir", str(tmp_path / "out"), "--fold-budget", "5"]
    with pytest.raises(SystemExit, match=r"--fold-budget 5 is below the cheapest MLP .* \(28,736 MACs"):
        load_script("compare_methods").main(args)
    assert not (tmp_path / "out").exists()
