"""A comparison killed in the middle resumes: finished points are loaded, not built again, and the
results equal an uninterrupted run's; a recipe that fails is reported and the others go on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import write_image_folder
from tests.helpers import ROOT, load_script, save_trained
from torch_impl.compare.points import CONFIG_FILE, FAILED_FILE, POINT_FILE, ROUNDS_FILE, Points, point_name
from torch_impl.compare.recipes import Recipe, default_recipes
from torch_impl.compare.run import make_context, run_comparison, select_recipes
from torch_impl.data import CIFAR10DataModule
from torch_impl.measure.latency import TimingProtocol
from torch_impl.model import SMALL_WIDTHS, build_model

# Cheap recipes that need no SVD (they run in the default recipe order, fine-tunes first).
RECIPES = "dense int8;prune 90% + FT;no hidden MLP + FT"
KILL_WAIT_S = 240  # the first point appears within seconds; this only bounds a hung run


def compare(root: Path, ckpt: Path, out: Path) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "compare_methods.py"), "--checkpoint", str(ckpt),
            "--out-dir", str(out), "--data-dir", str(root), "--cache-dir", str(root.parent / "cache"),
            "--recipes", RECIPES, "--finetune-steps", "3", "--calib-images", "16", "--min-rounds", "1",
            "--max-rounds", "1", "--save-models", "none", "--no-progress-bar"]


def accuracies(out: Path) -> dict[str, tuple[float, float]]:
    rows = json.loads((out / "compare.json").read_text())["rows"]
    return {r["method"]: (r["val_acc"], r["test_acc"]) for r in rows}


@pytest.mark.slow
def test_sigkill_in_the_middle_then_rerun_equals_an_uninterrupted_run(tmp_path: Path, capsys) -> None:
    root = write_image_folder(tmp_path / "cifar", n_train=8, n_test=2)
    ckpt = save_trained(tmp_path / "model.pt", build_model(42, widths=SMALL_WIDTHS).eval(), n_images=80)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "killed"
    run = subprocess.Popen(compare(root, ckpt, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + KILL_WAIT_S
    while not any((out / "points").glob(f"*/{POINT_FILE}")) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL and not (out / "compare.json").exists()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in (out / "points").glob(f"*/{POINT_FILE}")}
    assert 1 <= len(finished) < 3  # killed between points

    script = load_script("compare_methods")  # the rerun, in this process: one interpreter start fewer
    script.main(compare(root, ckpt, out)[2:])
    assert f"loaded {len(finished)} finished model(s)" in capsys.readouterr().out
    for name, mtime in finished.items():  # loaded, not computed again
        assert (out / "points" / name / POINT_FILE).stat().st_mtime_ns == mtime
    assert "were built by an earlier, interrupted run" in (out / "REPORT.md").read_text()
    assert not (out / "points" / ROUNDS_FILE).exists()  # kept rounds go once the results hold them

    # The same command never stopped.
    script.main(compare(root, ckpt, tmp_path / "whole")[2:])
    assert accuracies(out) == accuracies(tmp_path / "whole")

    with pytest.raises(SystemExit) as exit_info:  # other settings would mix two runs' points
        script.main([*compare(root, ckpt, out)[2:], "--finetune-steps", "4"])
    assert exit_info.value.code == 2
    assert "holds points made with other settings (finetune_steps)" in capsys.readouterr().err


def test_a_failing_recipe_is_reported_and_the_others_run(tmp_path: Path, net_svds) -> None:
    root = write_image_folder(tmp_path / "cifar", n_train=4, n_test=1)
    dm = CIFAR10DataModule(str(root), str(tmp_path / "cache"), batch_size=8, val_fraction=0.25)
    splits = {k: tuple(torch.from_numpy(a) for a in v) for k, v in dm.numpy_splits().items()}
    ctx = make_context(net_svds[0], dm, calib_images=8, svds=net_svds[1])

    def broken(ctx):
        raise RuntimeError("out of memory in the broken recipe\nsecond line")

    recipes = [Recipe("broken", "test", broken, {}), *select_recipes(default_recipes(), "SVD f=0.5")]
    points = Points(tmp_path / "points", {"test": 1})
    rows, summary = run_comparison(recipes, ctx, splits["val"], splits["test"], progress=False, roofline=False,
                                   points=points, protocol=TimingProtocol(min_rounds=1, max_rounds=1))
    assert [r["method"] for r in rows] == ["dense", rows[1]["method"], "SVD f=0.5"]
    assert summary["failures"] == [{"method": "broken", "error": "RuntimeError: out of memory in the broken recipe"}]
    assert (tmp_path / "points" / "broken" / FAILED_FILE).is_file()
    assert (tmp_path / "points" / point_name("SVD f=0.5") / POINT_FILE).is_file()
    assert json.loads((tmp_path / "points" / CONFIG_FILE).read_text()) == {"test": 1}
