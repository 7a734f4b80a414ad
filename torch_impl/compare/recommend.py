"""The comparison's answer, first: which model to use for a latency budget.

For each budget the model is chosen on validation accuracy only, and among models whose
time is within the budget with 95% confidence (the upper end of the ratio's interval at the
largest batch at or below it), so a noisy measurement cannot sneak a model in; the test set
only reports how the chosen model does. The last row is the fastest model (by its ratio's
estimate) whose validation accuracy is within ``WITHIN_PP`` of dense's. ``REPORT.md`` opens
with this table and ``recommended.json`` holds the same rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch_impl.measure.results import Result
from torch_impl.measure.stats import fmt_interval
from torch_impl.measure.targets import choose as choose_within

BUDGETS = (0.5, 0.25)  # time over dense fp32 eager's, batch 10,000
WITHIN_PP = 1.0  # validation accuracy points below dense's for the "fastest close to dense" row


def choose(results: list[Result]) -> list[tuple[str, Result | None]]:
    """(the budget in words, the chosen result or None) for each budget, then the fastest close to dense."""
    return choose_within(results, BUDGETS, WITHIN_PP)


def _interval(r: Result, b: int) -> list[float] | None:
    if b not in r.latency_ratio:
        return None
    return [r.ratio(b), *r.ratio_interval(b)]


def recommendation(results: list[Result], out_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``recommended.json``; ``out_dir`` is the comparison's, as the user named it."""
    rows = []
    sizes = sorted({b for r in results for b in r.latency_ratio}, reverse=True)
    for budget, r in choose(results):
        if r is None:
            rows.append({"budget": budget, "method": None, "why": "no model qualifies"})
            continue
        model_dir = r.get("model_dir")
        path = str(Path(out_dir) / model_dir) if model_dir else None
        rows.append({
            "budget": budget, "method": r.method, "val_acc": r.val_acc, "test_acc": r.test_acc,
            "test_diff_pp": [100 * r.get(k) for k in ("test_diff", "test_diff_lo", "test_diff_hi")],
            "test_mcnemar_p": r.get("test_mcnemar_p"),
            **{f"ratio_b{b}": _interval(r, b) for b in sizes},
            "model_dir": path,
            "load": f'torch_impl.artifact.load_compressed("{path}")' if path else None,
            "export": f"python scripts/export.py {path} --format onnx" if path else None,
        })
    return rows


def _ratio_cell(v: list[float] | None) -> str:
    return "not timed" if v is None else fmt_interval(*v, unit="x")


def recommendation_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per budget (``recommended.json``'s rows)."""
    sizes = sorted({int(k[7:]) for r in rows for k in r if k.startswith("ratio_b")}, reverse=True)
    head = ["budget (chosen on validation)", "model", "test vs dense, pp [95%]",
            *(f"time vs dense, batch {b:,} [95%]" for b in sizes), "saved as"]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        if r["method"] is None:
            out.append(f"| {r['budget']} | {r['why']} |" + " |" * (len(head) - 2))
            continue
        d, lo, hi = r["test_diff_pp"]
        saved = f"`{r['model_dir']}`" if r["model_dir"] else "not saved"
        out.append(f"| {r['budget']} | {r['method']} | {fmt_interval(d, lo, hi, '+.2f')} | "
                   + " | ".join(_ratio_cell(r.get(f"ratio_b{b}")) for b in sizes) + f" | {saved} |")
    return "\n".join(out)
