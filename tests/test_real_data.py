"""A short run on the real CIFAR-10 copy (``../shared/cifar10`` or $CIFAR10_DIR)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REAL_DATA
from torch_impl.training import TrainConfig, run_training

# 300 float32 steps are chaotic (the weights differ between CPUs), so the bound sits far
# below what was measured: 41.0% live test accuracy on an Intel Xeon (11 pp above it).
MIN_ACCURACY = 0.30
STEPS = 300  # 200 steps read 29.4% and 150 read 30.1% on that machine: too close to the bound

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (REAL_DATA / "train").is_dir(),
                                reason=f"real CIFAR-10 not found at {REAL_DATA} (set CIFAR10_DIR)")]


def test_few_hundred_steps_on_real_data_beat_chance(tmp_path: Path) -> None:
    cfg = TrainConfig(steps=STEPS, batch_size=64, eval_every=STEPS, ckpt_every=STEPS, data_dir=str(REAL_DATA),
                      out_dir=str(tmp_path / "run"), train_limit=20000, test_limit=2000,
                      progress_bar=False, accelerator="cpu", devices=1)
    metrics = run_training(cfg)
    # After STEPS steps the EMA (step 0.001) is still 74% initial weights, so the live
    # weights are the ones that show learning here.
    assert metrics["test_acc_live"] > MIN_ACCURACY, metrics
    assert metrics["n_test"] == 2000 and metrics["steps"] == STEPS
