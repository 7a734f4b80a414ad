"""The recommendation: per latency budget, the model chosen on validation, its time within the
budget at the upper end of its interval; the same rows as JSON and as the report's first table."""

from __future__ import annotations

import pytest

from torch_impl.compare.recommend import choose, recommendation, recommendation_table
from torch_impl.measure.results import CONTROL_FAMILY, Result


def row(method: str, val: float, test: float, ratio: float, halfwidth: float = 0.02, family: str = "x",
        model_dir: str | None = None) -> Result:
    r = Result(method, family, test, val_acc=val,
               latency_ratio={10_000: ratio, 1: ratio}, latency_ratio_lo={10_000: ratio - halfwidth, 1: ratio - 0.1},
               latency_ratio_hi={10_000: ratio + halfwidth, 1: ratio + 0.1},
               measured={"test_diff": test - 0.70, "test_diff_lo": test - 0.71, "test_diff_hi": test - 0.69,
                         "test_mcnemar_p": 0.5, **({"model_dir": model_dir} if model_dir else {})})
    return r


def results() -> list[Result]:
    return [
        row("dense", 0.70, 0.70, 1.0, 0.0, family="dense"),
        row("dense (A/A control)", 0.70, 0.70, 1.0, family=CONTROL_FAMILY),
        row("half, accurate", 0.695, 0.69, 0.45, model_dir="models/01-half"),
        row("half, less accurate", 0.68, 0.70, 0.40),  # better on test: test must not choose
        row("quarter, noisy", 0.69, 0.69, 0.24, halfwidth=0.03),  # estimate within 0.25x, upper end not
        row("quarter", 0.675, 0.67, 0.22, model_dir="models/02-quarter"),
        row("fast, inaccurate", 0.50, 0.50, 0.05),
    ]


def test_each_budget_takes_the_most_accurate_on_validation_within_it_with_confidence() -> None:
    chosen = dict((b, r.method if r else None) for b, r in choose(results()))
    assert chosen == {"at most 0.5x dense time": "half, accurate",
                      "at most 0.25x dense time": "quarter",
                      "fastest within 1 pp of dense": "quarter, noisy"}


def test_no_qualifying_model_is_said_not_guessed() -> None:
    rows = recommendation([results()[0], results()[-1]], "runs/compare")
    assert [r["method"] for r in rows] == ["fast, inaccurate", "fast, inaccurate", None]
    assert rows[2]["why"] == "no model qualifies"
    assert "no model qualifies" in recommendation_table(rows)


def test_rows_carry_intervals_paths_and_the_commands_that_use_them() -> None:
    rows = recommendation(results(), "runs/compare")
    half = rows[0]
    assert half["test_diff_pp"] == pytest.approx([-1.0, -2.0, 0.0])
    assert half["ratio_b10000"] == pytest.approx([0.45, 0.43, 0.47]) and half["ratio_b1"] == pytest.approx(
        [0.45, 0.35, 0.55])
    assert half["model_dir"] == "runs/compare/models/01-half"
    assert half["export"] == "python scripts/export.py runs/compare/models/01-half --format onnx"
    assert rows[2]["model_dir"] is None and rows[2]["export"] is None  # not saved: said so, no command
    table = recommendation_table(rows).splitlines()
    assert len(table) == 2 + 3 and "time vs dense, batch 10,000 [95%]" in table[0]
    assert "| at most 0.5x dense time | half, accurate | -1.00 [-2.00, +0.00] | 0.450x [0.430, 0.470] |" in table[2]
    assert "not saved" in table[4]
