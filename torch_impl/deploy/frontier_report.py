"""The deployment frontier's answer: targets, the recommendation, every row, and what was left out.

``FRONTIER.md`` opens with the recommendation (model, precision, runtime, per latency budget,
chosen on validation) and the four targets' verdicts, then the table of every timed
combination: test difference to dense fp32 eager with its 95% interval and McNemar's p, time
over dense fp32 eager's at batch 10,000, over dense fp32 in the same runtime, and batch 1's p50
and p90 ratios, each with its interval; then the combinations screened out and those with no
form here, each with why. ``frontier.json`` holds the same rows and the run's provenance.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from torch_impl.deploy.frontier import BUDGETS, REFERENCE, TARGETS
from torch_impl.files import write_text
from torch_impl.measure.results import CONTROL_FAMILY, Result, write_results
from torch_impl.measure.stats import fmt_interval
from torch_impl.measure.targets import choose, judge, verdict_line
from torch_impl.measure.text import p_text, verdict


def _cell(r: Result, stem: str, b: int) -> str:
    mid = r.get(f"{stem}_b{b}") if stem != "latency_ratio" else r.latency_ratio.get(b)
    if mid is None or (isinstance(mid, float) and math.isnan(mid)):
        return "-"
    if stem == "latency_ratio":
        return fmt_interval(mid, r.latency_ratio_lo[b], r.latency_ratio_hi[b], unit="x")
    lo_key = stem.replace("_ratio", "_ratio_lo") if "_ratio" in stem else f"{stem}_lo"
    hi_key = stem.replace("_ratio", "_ratio_hi") if "_ratio" in stem else f"{stem}_hi"
    return fmt_interval(mid, r.get(f"{lo_key}_b{b}"), r.get(f"{hi_key}_b{b}"), unit="x")


def _diff(r: Result) -> str:
    d, lo, hi = (100 * r.get(f"test_diff{s}", 0.0) for s in ("", "_lo", "_hi"))
    return fmt_interval(d, lo, hi, "+.2f")


def _parts(r: Result) -> tuple[str, str, str]:
    return r.settings["deploy_model"], r.settings["precision"], r.settings["runtime"]


def recommendation(results: list[Result], saved: dict[str, str]) -> list[dict[str, Any]]:
    """Per budget, the combination chosen on validation, with where its deployable form is."""
    big = max(b for r in results for b in r.latency_ratio)
    rows = []
    timed = any(not math.isnan(x.latency_ratio_lo.get(big, math.nan)) for x in results if x.method != REFERENCE)
    for budget, r in choose(results, BUDGETS):
        if r is None:
            rows.append({"budget": budget, "key": None, "why": "no combination qualifies" if timed else
                         "undecided: too few timing rounds for an interval to hold a budget to"})
            continue
        model, precision, runtime = _parts(r)
        rows.append({"budget": budget, "key": r.method, "model": model, "precision": precision, "runtime": runtime,
                     "val_acc": r.val_acc, "test_acc": r.test_acc,
                     "test_diff_pp": [100 * r.get(k) for k in ("test_diff", "test_diff_lo", "test_diff_hi")],
                     "test_mcnemar_p": r.get("test_mcnemar_p"),
                     "ratio": [r.ratio(big), *r.ratio_interval(big)], "batch_size": big,
                     "deployed": saved.get(r.method)})
    return rows


def winners(results: list[Result]) -> list[str]:
    """The combinations to save: each met target's choice and each budget's."""
    judged = judge(results, TARGETS)
    keys = [v["chosen"]["method"] for v in judged.values() if v["met"]]
    keys += [r.method for _, r in choose(results, BUDGETS) if r is not None]
    return list(dict.fromkeys(keys))


def recommendation_table(rows: list[dict[str, Any]]) -> str:
    head = ["budget (chosen on validation)", "model", "precision", "runtime", "test vs dense fp32 eager, pp [95%]",
            "McNemar p", "time vs dense fp32 eager [95%]", "deployable form"]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        if r["key"] is None:
            out.append(f"| {r['budget']} | {r['why']} |" + " |" * (len(head) - 2))
            continue
        out.append(f"| {r['budget']} | {r['model']} | {r['precision']} | {r['runtime']} | "
                   f"{fmt_interval(*r['test_diff_pp'], spec='+.2f')} | {p_text(r['test_mcnemar_p'])} | "
                   f"{fmt_interval(*r['ratio'], unit='x')} at batch {r['batch_size']:,} | "
                   + (f"`{r['deployed']}`" if r["deployed"] else "not saved") + " |")
    return "\n".join(out)


def rows_table(results: list[Result]) -> str:
    sizes = sorted({b for r in results for b in r.latency_ratio}, reverse=True)
    big, small = sizes[0], sizes[-1]
    head = ["model", "precision", "runtime", "val acc %", "test acc %", "test vs dense, pp [95%]", "McNemar p",
            f"x dense fp32 eager, b{big:,} [95%]", f"x dense fp32 same runtime, b{big:,}",
            f"b{small} p50 x [95%]", f"b{small} p90 x [95%]", "notes"]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    order = sorted(results, key=lambda r: (r.method != REFERENCE, r.family == CONTROL_FAMILY,
                                           r.latency_ratio.get(big, math.inf)))
    for r in order:
        model, precision, runtime = _parts(r)
        notes = []
        if r.family == CONTROL_FAMILY:
            notes.append("A/A control: a copy of dense fp32 eager timed as another model")
        if r.get("graph_breaks") is not None:
            notes.append(f"{r.get('graph_breaks')} graph breaks")
        if r.get("inference_precision") and precision == "bf16":
            notes.append(f"OpenVINO ran {r.get('inference_precision')}")
        if r.get("timing_stopped"):
            notes.append(f"timing stopped: {r.get('timing_stopped')}")
        d, lo, hi = (r.get(f"test_diff{s}", 0.0) for s in ("", "_lo", "_hi"))
        v = verdict(d, lo, hi, r.get("test_mcnemar_p", 1.0))
        if "disagree" in v:
            notes.append("(tests disagree)")
        out.append(f"| {model} | {precision} | {runtime} | {100 * r.val_acc:.2f} | {100 * r.test_acc:.2f} | "
                   f"{_diff(r)} | {p_text(r.get('test_mcnemar_p', 1.0))} | {_cell(r, 'latency_ratio', big)} | "
                   f"{_cell(r, 'runtime_ratio', big)} | {_cell(r, 'latency_ratio', small)} | "
                   f"{_cell(r, 'latency_p90_ratio', small)} | {'; '.join(notes)} |")
    return "\n".join(out)


def _left_out(screened: dict[str, dict[str, Any]], skipped: list[dict[str, str]]) -> list[str]:
    lines = ["## Left out, and why", ""]
    lines += [f"- {k}: screened out, {v['why']}" for k, v in screened.items()]
    lines += [f"- {s['model']} | {s['precision']} | {s['runtime']}: no form here, {s['why']}" for s in skipped]
    return lines if len(lines) > 2 else []


def rewrite_frontier(out_dir: Path) -> Path:
    """FRONTIER.md again from ``frontier.json`` (after a change to the report, without re-measuring)."""
    path = out_dir / "frontier.json"
    if not path.is_file():
        raise ValueError(f"{path} does not exist: run scripts/deploy_frontier.py into {out_dir} first")
    data = json.loads(path.read_text())
    rows = [Result.from_row(r) for r in data.pop("rows")]
    saved = {r["key"]: r["deployed"] for r in data.pop("recommendation") if r.get("key") and r.get("deployed")}
    screened, skipped = data.pop("screened"), data.pop("skipped")
    data.pop("targets", None)
    return write_frontier(out_dir, rows, data, recommendation(rows, saved), screened, skipped)


def write_frontier(out_dir: Path, results: list[Result], meta: dict[str, Any], recs: list[dict[str, Any]],
                   screened: dict[str, dict[str, Any]], skipped: list[dict[str, str]]) -> Path:
    """FRONTIER.md, frontier.json and frontier.csv in ``out_dir``; returns FRONTIER.md's path."""
    judged = judge(results, TARGETS)
    ref = next(r for r in results if r.method == REFERENCE)
    sizes = sorted(ref.latency_us, reverse=True)
    write_results([r.to_row() for r in results], out_dir,
                  {**meta, "targets": judged, "recommendation": recs, "screened": screened, "skipped": skipped},
                  stem="frontier")
    t = meta["timing"]
    lines = ["# The deployment frontier: model x precision x runtime, against dense fp32 eager", "",
             f"Generated by `{meta['command']}` at commit `{meta['provenance'].get('git_commit')}` on "
             f"{meta['provenance'].get('device')} ({ref.get('threads')} threads); {meta['n_val']:,} validation "
             f"images (choices), {meta['n_test']:,} test images (verdicts). {meta.get('split_text', '')}", "",
             "Dense fp32 eager, the model a user starts from: " + ", ".join(
                 f"{ref.latency_us[b]:.1f} us/example at batch {b:,}" for b in sizes)
             + (f" (p90 {ref.get(f'latency_p90_us_b{sizes[-1]}'):.1f} us)" if ref.get(f"latency_p90_us_b{sizes[-1]}")
                else "") + f"; test accuracy {100 * ref.test_acc:.2f}%.", "",
             f"Timing: {t['rounds']} rounds in {t['elapsed_s']:.0f} s, stopped by the {t['stopped_by']}."
             + (f" **{t['warning']}**" if t.get("warning") else ""),
             "A/A control: " + "; ".join(f"{fmt_interval(*v, unit='x')} at batch {int(b):,}"
                                         for b, v in meta["aa_control"].items())
             + (f" **{meta['aa_warning']}**" if meta.get("aa_warning") else ""), "",
             "## Recommendation", "", recommendation_table(recs), "",
             "## Targets (chosen on validation, judged on test)", ""]
    lines += [verdict_line(name, v, of="dense fp32 eager") for name, v in judged.items()]
    lines += ["", "## Every timed combination", "",
              "Ratios are times over dense fp32 eager's, measured side by side in the same rounds "
              "(below 1: faster); \"same runtime\" is over dense fp32 in that runtime; batch 1 is "
              f"{t['protocol']['queries']} single queries per round, p50 and p90. Intervals: 95%.", "",
              rows_table(results), ""]
    lines += _left_out(screened, skipped)
    if meta.get("reload"):
        lines += ["", "## Reloaded in a fresh process", "", "```", meta["reload"].rstrip(), "```"]
    return write_text(out_dir / "FRONTIER.md", "\n".join(lines) + "\n")
