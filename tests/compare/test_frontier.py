"""The frontier targets choose their rows on validation and judge them on test, with the closest row named."""

from __future__ import annotations

from tests.compare.synthetic import DENSE, synthetic
from torch_impl.compare.frontier import TARGETS, frontier
from torch_impl.measure.targets import verdict_line


def _row(method: str, val_acc: float, ratio: float, test_diff: float, p: float = 0.001, val_p: float = 0.001):
    r = synthetic(method, "x", val_acc, ratio, 1e6)
    r.measured.update(test_diff=test_diff, test_diff_lo=test_diff - 0.005, test_diff_hi=test_diff + 0.005,
                      test_mcnemar_p=p, val_diff=val_acc - DENSE.val_acc, val_mcnemar_p=val_p)
    return r


def test_targets_are_the_issue_lines() -> None:
    assert [(t.name, t.limit, t.within_pp, t.batch) for t in TARGETS] == [
        ("A", 0.20, 0.5, "large"), ("B", 0.125, 1.0, "large"), ("C", 0.10, 1.0, "small"), ("D", 0.33, None, "large")]


def test_rows_are_chosen_on_validation_and_judged_on_test() -> None:
    # "val-best" is the most accurate on validation within 0.20x but worse on test than "test-best":
    # the choice follows validation, and the verdict its test difference.
    rows = [DENSE, _row("val-best", 0.698, 0.19, -0.008), _row("test-best", 0.690, 0.18, -0.001),
            _row("slow", 0.702, 0.5, 0.0, p=0.9, val_p=0.9)]
    a = frontier(rows)["A"]
    assert a["chosen"]["method"] == "val-best" and not a["met"]
    assert a["fastest_within_line_on_validation"]["method"] == "val-best"  # -0.2 pp on validation
    text = verdict_line("A", a)
    assert "**missed**" in text and "val-best at 0.190x" in text and "-0.80 pp" in text
    d = frontier(rows)["D"]  # nothing at 0.33x is indistinguishable; "slow" is, at 0.5x
    assert not d["met"] and d["fastest_within_line_on_validation"]["method"] == "slow"


def test_a_target_is_met_by_its_test_difference() -> None:
    rows = [DENSE, _row("good", 0.699, 0.19, -0.004), _row("d", 0.700, 0.3, -0.002, p=0.4, val_p=0.6)]
    out = frontier(rows)
    assert out["A"]["met"] and "**met** by good" in verdict_line("A", out["A"])
    assert out["D"]["met"] and out["D"]["chosen"]["method"] == "d"
    assert not out["B"]["met"] and out["B"]["chosen"] is None and "no row is that fast" in verdict_line("B", out["B"])
    assert out["C"]["batch_size"] == 1 and out["A"]["batch_size"] == 10_000
