"""The two benchmarks a user is pointed to (``svd-compress bench-inference`` and ``bench-training``),
end to end at the smallest size that runs every step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.commands.conftest import real_data_env
from torch_impl.commands.main import run as svd_compress
from torch_impl.measure.train_bench import AA_SUFFIX

pytestmark = pytest.mark.slow


def test_bench_inference_times_every_way_of_running_a_batch(capsys) -> None:
    _, results = svd_compress(["bench-inference", "--batch", "64", "--chunks", "16,32", "--mlp-chunks", "32",
                               "--repeats", "1"])
    assert set(results) == {"NCHW contiguous, one call", "channels-last view, one call", "channels-last, chunks of 16",
                            "channels-last, chunks of 32", "trunk chunks 256, MLP chunks 32"}
    assert all(v > 0 for v in results.values()), results
    assert "batch 64" in capsys.readouterr().out


def test_bench_training_compares_ways_beside_an_aa_control(tmp_path: Path) -> None:
    _, result = svd_compress(["bench-training", "--ways", "eager", "--blocks", "2", "--steps", "2", "--warmup", "1",
                              "--batch-size", "16", "--out-dir", str(tmp_path), "--data-dir",
                              real_data_env()["CIFAR10_DIR"], "--no-progress-bar"])
    assert [r["way"] for r in result["rows"]] == ["eager", "eager" + AA_SUFFIX]  # the control: eager again
    assert all(len(r["ms_per_step_per_block"]) == 2 and r["images_per_s"] > 0 for r in result["rows"])
    saved = json.loads((tmp_path / "bench_training_torch.json").read_text())
    assert saved["provenance"] and [r["way"] for r in saved["rows"]] == [r["way"] for r in result["rows"]]
