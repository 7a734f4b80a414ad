"""The training benchmark: its arithmetic on known step times, and one tiny real run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_image_folder
from torch_impl.measure.train_bench import AA_SUFFIX, bench, bench_result, format_rows
from torch_impl.model import SMALL_WIDTHS
from torch_impl.training import TrainConfig


def test_speedup_is_the_baseline_time_over_the_way_s() -> None:
    per_block = {"old": [0.20, 0.22, 0.21, 0.20, 0.19], "new": [0.10, 0.11, 0.105, 0.10, 0.095]}
    out = bench_result(per_block, 128, 5, 30, 5, {"old": {}, "new": {}}, "m")
    old, new = out["rows"]
    assert old["speedup"] == pytest.approx(1.0) and new["speedup"] == pytest.approx(2.0)
    assert new["speedup_lo"] == pytest.approx(2.0)
    assert new["images_per_s"] == pytest.approx(128 / 0.10)  # the median block
    assert "2.000x" in format_rows(out)


@pytest.mark.slow
def test_a_tiny_run_times_every_way_and_the_control(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "data", n_train=4, n_test=1)
    base = TrainConfig(batch_size=8, data_dir=str(root), cache_dir=str(tmp_path / "cache"), accelerator="cpu",
                       devices=1, val_fraction=0.0, widths=SMALL_WIDTHS)
    out = bench({"eager": {}, "bf16": {"precision": "bf16-mixed"}}, base, blocks=1, steps=2, warmup=1,
                progress=False)
    assert [r["way"] for r in out["rows"]] == ["eager", "bf16", "eager" + AA_SUFFIX]
    assert all(len(r["ms_per_step_per_block"]) == 1 and r["images_per_s"] > 0 for r in out["rows"])
