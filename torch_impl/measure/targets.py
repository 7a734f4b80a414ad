"""Targets and budgets on measured rows: chosen on validation, judged on test.

A ``Target`` is an accuracy line (at most ``within_pp`` below dense, or no detectable
difference below it) at no more than ``limit`` times dense's time at one batch size. For each,
the row is chosen on validation (the most accurate on validation within the latency limit, by
its measured ratio); whether the line is met is read off that row's test difference to dense,
with its interval and McNemar's p. A missed target also names the row that came closest (the
fastest within the line on validation) and what would move it.

A budget (``choose``) is a latency limit met with 95% confidence: the upper end of the ratio's
interval, so a noisy measurement cannot sneak a row in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch_impl.measure.results import Result, candidates, dense_of
from torch_impl.measure.stats import SIGNIFICANCE, fmt_interval
from torch_impl.measure.text import no_worse_than_dense, p_text

WITHIN_PP = 1.0  # validation accuracy points below dense's for the "fastest close to dense" budget


@dataclass(frozen=True)
class Target:
    name: str
    limit: float  # latency ratio to dense, at most
    within_pp: float | None  # test accuracy at most this far below dense; None: no detectable difference below
    batch: str = "large"  # "large": the largest batch timed; "small": the smallest


def _within(r: Result, t: Target, split: str) -> bool:
    d = r.get(f"{split}_diff", 0.0)
    if t.within_pp is None:
        return no_worse_than_dense(d, r.get(f"{split}_diff_lo", 0.0), r.get(f"{split}_diff_hi", 0.0),
                                   r.get(f"{split}_mcnemar_p", 1.0))
    return 100 * d >= -t.within_pp


def _row(r: Result, b: int) -> dict[str, Any]:
    lo, hi = r.ratio_interval(b)
    return {"method": r.method, "val_acc": r.val_acc, "test_acc": r.test_acc, "d_acc_pp": 100 * r.get("test_diff", 0.0),
            "d_acc_pp_interval": [100 * r.get("test_diff_lo", 0.0), 100 * r.get("test_diff_hi", 0.0)],
            "mcnemar_p": r.get("test_mcnemar_p"), "ratio": r.ratio(b), "ratio_interval": [lo, hi], "batch_size": b}


def _timed(r: Result, b: int) -> bool:
    return b in r.latency_ratio and not math.isnan(r.latency_ratio[b])


def judge(results: list[Result], targets: tuple[Target, ...]) -> dict[str, Any]:
    """Each target met or missed, the row chosen on validation, and the closest row when missed."""
    rows = candidates(results)
    sizes = sorted({b for r in rows for b in r.latency_ratio})
    if not sizes:
        return {}
    out: dict[str, Any] = {}
    for t in targets:
        b = sizes[-1] if t.batch == "large" else sizes[0]
        timed = [r for r in rows if _timed(r, b)]
        fast = [r for r in timed if r.ratio(b) <= t.limit]
        best = max(fast, key=lambda r: r.val_acc) if fast else None
        close = [r for r in timed if _within(r, t, "val")]
        closest = min(close, key=lambda r: r.ratio(b)) if close else None
        out[t.name] = {"limit_ratio": t.limit, "within_pp": t.within_pp, "batch_size": b,
                       "met": best is not None and _within(best, t, "test"),
                       "chosen": _row(best, b) if best is not None else None,
                       "fastest_within_line_on_validation": _row(closest, b) if closest is not None else None}
    return out


def verdict_line(name: str, v: dict[str, Any], of: str = "dense") -> str:
    """One Markdown bullet for a target's verdict; when missed, what would move it."""
    line = (f"within {v['within_pp']} pp of dense" if v["within_pp"] is not None
            else f"no detectable difference below dense: McNemar p > {SIGNIFICANCE} and the interval contains 0")
    head = f"- **{name}** ({line} at no more than {v['limit_ratio']:.3g}x {of}, batch {v['batch_size']:,}): "
    c, near = v["chosen"], v["fastest_within_line_on_validation"]

    def cite(r: dict[str, Any]) -> str:
        lo, hi = r["d_acc_pp_interval"]
        return (f"{r['method']} at {fmt_interval(r['ratio'], *r['ratio_interval'], unit='x')}, "
                f"test {fmt_interval(r['d_acc_pp'], lo, hi, '+.2f', ' pp')}, p = {p_text(r['mcnemar_p'])}")
    if v["met"]:
        return head + f"**met** by {cite(c)} (chosen on validation)."
    text = head + "**missed**; " + (f"the most accurate on validation within the limit: {cite(c)}" if c
                                    else "no row is that fast")
    if c is not None and v["within_pp"] is not None:
        text += f" ({c['d_acc_pp'] + v['within_pp']:+.2f} pp from the line on test)"
    if near is not None:
        text += f"; the fastest within the line on validation: {cite(near)}"
        if near["ratio"] > v["limit_ratio"]:
            text += f" (it would need to run {near['ratio'] / v['limit_ratio']:.2f}x faster)"
    return text + "."


def choose(results: list[Result], budgets: tuple[float, ...], within_pp: float = WITHIN_PP
           ) -> list[tuple[str, Result | None]]:
    """(the budget in words, the chosen result or None) for each budget (time over dense's at the
    largest batch, its interval's upper end), then the fastest within ``within_pp`` of dense on
    validation."""
    dense = dense_of(results)
    pool = [r for r in candidates(results) if r.latency_ratio and not any(map(math.isnan, r.ratio_interval()))
            and r.val_acc is not None]
    out: list[tuple[str, Result | None]] = []
    for limit in budgets:
        within = [r for r in pool if r.ratio_interval()[1] <= limit]
        out.append((f"at most {limit:g}x dense time", max(within, key=lambda r: r.val_acc, default=None)))
    # rounded: accuracies are counts over images, and 0.70 - 0.69 is 0.0100000000000000009 in floats
    close = [r for r in pool if dense is not None and round(100 * (dense.val_acc - r.val_acc), 9) <= within_pp]
    out.append((f"fastest within {within_pp:g} pp of dense", min(close, key=lambda r: r.ratio(), default=None)))
    return out
