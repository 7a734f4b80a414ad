"""``svd-compress parity`` (scripts/parity_report.py) end to end on make run's model and the real
images: the torch and JAX curves on the same weights, and the fair latency table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.commands.conftest import SmokeRun, real_data_env
from torch_impl.commands.main import run as svd_compress
from torch_impl.parity.framework_latency import HARNESS, WAYS, fair_table

pytestmark = pytest.mark.slow
ACC_TOL = 0.01  # torch and JAX on the same weights: the same predictions but for near-ties (300 images)


def test_parity_report_sweeps_both_frameworks_on_the_same_weights(smoke_run: SmokeRun, tmp_path: Path) -> None:
    out = tmp_path / "parity"
    svd_compress(["parity", "--checkpoint", str(smoke_run.checkpoint), "--fractions", "1.0,0.5", "--out-dir", str(out),
                  "--data-dir", real_data_env()["CIFAR10_DIR"], "--test-limit", "300", "--min-rounds", "3",
                  "--max-rounds", "3", "--queries", "10", "--no-progress-bar"])
    saved = json.loads((out / "parity.json").read_text())
    assert (out / "parity.csv").is_file() and list(out.glob("*.png"))
    rows = [r for r in saved["rows"] if "framework" in r]  # the curves (the fair-latency rows have none)
    frameworks = {r["framework"] for r in rows}
    assert frameworks == {"torch", "jax"}, frameworks
    by_point = {}
    for r in rows:
        by_point.setdefault((r.get("mode"), r.get("rank_fraction")), {})[r["framework"]] = r["test_acc"]
    paired = [accs for accs in by_point.values() if len(accs) == 2]
    assert paired and all(abs(a["torch"] - a["jax"]) <= ACC_TOL for a in paired), by_point
    # the fair latency: every point in both frameworks both ways, and torch's harness beside them
    fair = saved["fair_latency"]
    points = list(dict.fromkeys(r["point"] for r in fair))
    assert points == ["dense", "factorized f=0.5", "factorized f=0.1"]
    assert [(r["point"], r["way"]) for r in fair] == [(p, w) for p in points for w in (*WAYS.values(), HARNESS)]
    for r in fair:
        assert r["torch_us"] > 0
        if r["way"] != HARNESS:
            assert r["jax_us"] > 0 and r["torch_over_jax_lo"] <= r["torch_over_jax"] <= r["torch_over_jax_hi"]
    assert saved["timing"]["fair"]["rounds"] == 3 and "chunks of 256 images" in fair_table(fair)
