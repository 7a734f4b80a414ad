"""``svd-compress runtimes`` (scripts/runtime_matrix.py) end to end on make run's saved models:
every model in eager, torch.compile and ONNX Runtime, each against dense in its own runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.commands.conftest import SmokeRun, real_data_env
from torch_impl.commands.main import run as svd_compress

pytest.importorskip("onnxruntime", reason="the deploy extra (pip install -e '.[deploy]') is not installed")
pytestmark = pytest.mark.slow


def test_runtime_matrix_times_the_saved_models_in_every_runtime(smoke_run: SmokeRun, tmp_path: Path) -> None:
    out = tmp_path / "runtimes"
    _, rows = svd_compress(["runtimes", "--checkpoint", str(smoke_run.checkpoint), "--models",
                            str(smoke_run.models()[0]), "--out-dir", str(out), "--data-dir",
                            real_data_env()["CIFAR10_DIR"], "--test-limit", "300", "--min-rounds", "3",
                            "--max-rounds", "3", "--queries", "10", "--no-progress-bar"])
    for name in ("runtimes.json", "runtimes.csv", "RUNTIMES.md", "runtimes.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "runtimes.json").read_text())
    runtimes = {r["runtime"] for r in saved["rows"]}
    assert runtimes >= {"eager", "onnxruntime"}, runtimes
    assert len(rows) == len(saved["rows"]) >= 4  # dense and one model, in at least two runtimes
