"""The frontier targets: how close to dense a compressed model stays at a fraction of its latency.

    A  at most 0.5 pp below dense at no more than 0.20x dense latency (batch 10,000)
    B  at most 1.0 pp below dense at no more than 0.125x (batch 10,000)
    C  at most 1.0 pp below dense at no more than 0.10x dense batch-1 latency
    D  no detectable difference below dense (McNemar p > 0.05 and the paired interval contains
       0; or above dense) at no more than 0.33x

For each, the row is chosen on validation (the most accurate on validation within the latency
limit, by its measured ratio); whether the line is met is read off that row's test difference
to dense, with its interval and McNemar's p. A missed target also names the method that came
closest: the fastest row within the accuracy line on validation, and its ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch_impl.measure.results import Result, candidates
from torch_impl.measure.stats import SIGNIFICANCE, fmt_interval
from torch_impl.measure.text import no_worse_than_dense, p_text

# The recipe families added to push the front (recipes.py); the plot draws the front without them too.
FRONTIER_FAMILIES = ("longer recovery", "nested ranks", "trunk compressed", "low-rank from the start")


@dataclass(frozen=True)
class Target:
    name: str
    limit: float  # latency ratio to dense, at most
    within_pp: float | None  # test accuracy at most this far below dense; None: no detectable difference below
    batch: str = "large"  # "large": the largest batch timed; "small": the smallest


TARGETS = (Target("A", 0.20, 0.5), Target("B", 0.125, 1.0), Target("C", 0.10, 1.0, batch="small"),
           Target("D", 0.33, None))


def _met(r: Result, t: Target) -> bool:
    d = r.get("test_diff", 0.0)
    if t.within_pp is None:
        return no_worse_than_dense(d, r.get("test_diff_lo", 0.0), r.get("test_diff_hi", 0.0),
                                   r.get("test_mcnemar_p", 1.0))
    return 100 * d >= -t.within_pp


def _on_validation(r: Result, t: Target) -> bool:
    """Within the accuracy line on validation (the split the choices are made on)."""
    d = r.get("val_diff", 0.0)
    if t.within_pp is None:
        return no_worse_than_dense(d, r.get("val_diff_lo", 0.0), r.get("val_diff_hi", 0.0),
                                   r.get("val_mcnemar_p", 1.0))
    return 100 * d >= -t.within_pp


def _row(r: Result, b: int) -> dict[str, Any]:
    lo, hi = r.ratio_interval(b)
    return {"method": r.method, "val_acc": r.val_acc, "test_acc": r.test_acc, "d_acc_pp": 100 * r.get("test_diff", 0.0),
            "d_acc_pp_interval": [100 * r.get("test_diff_lo", 0.0), 100 * r.get("test_diff_hi", 0.0)],
            "mcnemar_p": r.get("test_mcnemar_p"), "ratio": r.ratio(b), "ratio_interval": [lo, hi], "batch_size": b}


def frontier(results: list[Result]) -> dict[str, Any]:
    """Each target met or missed, the row chosen on validation, and the closest row when missed."""
    rows = candidates(results)
    if not rows:
        return {}
    sizes = sorted(rows[0].latency_ratio)
    out: dict[str, Any] = {}
    for t in TARGETS:
        b = sizes[-1] if t.batch == "large" else sizes[0]
        fast = [r for r in rows if r.ratio(b) <= t.limit]
        best = max(fast, key=lambda r: r.val_acc) if fast else None
        close = [r for r in rows if _on_validation(r, t)]
        closest = min(close, key=lambda r: r.ratio(b)) if close else None
        out[t.name] = {"limit_ratio": t.limit, "within_pp": t.within_pp, "batch_size": b,
                       "met": best is not None and _met(best, t),
                       "chosen": _row(best, b) if best is not None else None,
                       "fastest_within_line_on_validation": _row(closest, b) if closest is not None else None}
    return out


def verdict_line(name: str, v: dict[str, Any]) -> str:
    """One Markdown bullet for a target's verdict."""
    line = (f"within {v['within_pp']} pp of dense" if v["within_pp"] is not None
            else f"no detectable difference below dense: McNemar p > {SIGNIFICANCE} and the interval contains 0")
    head = f"- **{name}** ({line} at no more than {v['limit_ratio']:.3g}x dense, batch {v['batch_size']:,}): "
    c, near = v["chosen"], v["fastest_within_line_on_validation"]

    def cite(r: dict[str, Any]) -> str:
        lo, hi = r["d_acc_pp_interval"]
        return (f"{r['method']} at {fmt_interval(r['ratio'], *r['ratio_interval'], unit='x')}, "
                f"test {fmt_interval(r['d_acc_pp'], lo, hi, '+.2f', ' pp')}, p = {p_text(r['mcnemar_p'])}")
    if v["met"]:
        return head + f"**met** by {cite(c)} (chosen on validation)."
    text = head + "**missed**; " + (f"the most accurate on validation within the limit: {cite(c)}" if c
                                    else "no row is that fast")
    if near is not None:
        text += f"; the fastest within the line on validation: {cite(near)}"
    return text + "."
