"""The training benchmark's arithmetic on known step times (a real run: tests/commands/test_bench.py)."""

from __future__ import annotations

import pytest

from torch_impl.measure.train_bench import bench_result, format_rows


def test_speedup_is_the_baseline_time_over_the_way_s() -> None:
    per_block = {"old": [0.20, 0.22, 0.21, 0.20, 0.19], "new": [0.10, 0.11, 0.105, 0.10, 0.095]}
    out = bench_result(per_block, 128, 5, 30, 5, {"old": {}, "new": {}}, "m")
    old, new = out["rows"]
    assert old["speedup"] == pytest.approx(1.0) and new["speedup"] == pytest.approx(2.0)
    assert new["speedup_lo"] == pytest.approx(2.0)
    assert new["images_per_s"] == pytest.approx(128 / 0.10)  # the median block
    assert "2.000x" in format_rows(out)
