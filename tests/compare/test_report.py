"""The report's helpers and targets on synthetic results: chosen on validation, judged on test."""

from __future__ import annotations

import copy

from tests.compare.synthetic import DENSE, synthetic
from torch_impl.compare.answers import answers, pareto_front
from torch_impl.compare.report import targets
from torch_impl.measure.results import Result


def test_report_helpers_on_synthetic_results() -> None:
    svd = [synthetic(f"SVD f={f}", "plain SVD", acc, ratio, macs, rule="uniform", mode="factorized", rank_fraction=f)
           for f, acc, ratio, macs in ((0.5, 0.66, 0.8, 26e6), (0.2, 0.40, 0.6, 15e6), (0.1, 0.19, 0.5, 11e6))]
    results = [DENSE, synthetic("folded pools + KD", "pool folding", 0.68, 0.77, 23.7e6, 21.2e6, pool_fold=True,
                              finetune_steps=3, val_acc_before_finetune=0.58), *svd,
               synthetic("A", "x", 0.698, 0.55, 8e6), synthetic("B", "x", 0.69, 0.2, 2e6)]
    assert [r.method for r in pareto_front(results)] == ["B", "A", "dense"]
    v = targets(results)
    assert v["at_svd_0.2_latency"]["best"] == "A" and v["at_svd_0.2_latency"]["met"]
    assert v["at_25pct_latency"]["best"] == "B" and v["at_25pct_latency"]["met"]
    text = " ".join(answers(results))
    assert "SVD f=0.2: 39.00% (-30.00 pp [-30.50, -29.50], p = 0.001)" in text
    assert "B at 0.200x [0.196, 0.204] dense time, validation 69.00%, test 68.00%" in text
    assert "trunk 6.80 M -> 2.50 M MACs" in text and "validation 58.00% before and 68.00% after" in text
    rows = [r.to_row() for r in results]  # what compare.json holds reads back the same
    assert [Result.from_row(r) for r in rows] == results


def test_selection_reads_no_test_number() -> None:
    """The front and the targets' rows are the same whatever the test numbers say (here: none)."""
    results = [DENSE, synthetic("A", "x", 0.698, 0.55, 8e6), synthetic("B", "x", 0.69, 0.2, 2e6),
               synthetic("C", "x", 0.60, 0.15, 1e6), synthetic("D", "x", 0.699, 0.7, 1e7)]
    blind = [copy.deepcopy(r) for r in results]
    for r in blind:
        r.test_acc = float("nan")
        r.measured = {k: (float("nan") if k.startswith("test_") else v) for k, v in r.measured.items()}
    assert [r.method for r in pareto_front(blind)] == [r.method for r in pareto_front(results)] == [
        "C", "B", "A", "D", "dense"]
    seen, blind_seen = targets(results), targets(blind)
    def chosen(t: dict) -> dict:
        rows = {k: v["best"] for k, v in t.items() if isinstance(v, dict) and k != "frontier"}
        for name, v in t["frontier"].items():
            for key in ("chosen", "fastest_within_line_on_validation"):
                rows[f"{name} {key}"] = (v[key] or {}).get("method")
        return rows
    assert chosen(seen) == chosen(blind_seen) and chosen(seen)["A chosen"] == "B"
    assert seen["at_25pct_latency"]["best"] == "B" and seen["fastest_within_1.5pp_on_validation"]["best"] == "B"


def test_a_target_is_judged_on_the_test_interval() -> None:
    """Chosen on validation (69.8%), the row scores -2.0 pp on test: the 1.5 pp line is missed,
    beyond doubt when the interval misses it too."""
    row = synthetic("E", "x", 0.70, 0.2, 1e6)
    row.measured.update(test_diff=-0.02, test_diff_lo=-0.027, test_diff_hi=-0.016)
    v = targets([DENSE, row])["at_25pct_latency"]
    assert v["best"] == "E" and not v["met"] and v["decided"] == "beyond the line with 95% confidence"
    row.measured.update(test_diff_hi=-0.01)
    assert targets([DENSE, row])["at_25pct_latency"]["decided"] == "the interval straddles the line"
