"""The runtime matrix written out: CSV and JSON, a plot, and RUNTIMES.md with one answer per runtime."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import matplotlib

from torch_impl.measure.stats import fmt_interval

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from torch_impl.deploy.runtimes import AA_NAME, RUNTIMES  # noqa: E402
from torch_impl.files import atomic_path, write_json  # noqa: E402


def _vs_dense(row: dict[str, Any], b: int) -> str:
    """``0.512x [0.498, 0.526]``: a row's time over dense's at batch ``b``."""
    return fmt_interval(row[f"ratio_b{b}"], row[f"ratio_lo_b{b}"], row[f"ratio_hi_b{b}"], unit="x")


def _vs_eager(row: dict[str, Any], b: int) -> str:
    """A row's time over the same model's eager time at batch ``b``."""
    return fmt_interval(row[f"vs_eager_b{b}"], row[f"vs_eager_lo_b{b}"], row[f"vs_eager_hi_b{b}"], unit="x")


def write_matrix(rows: list[dict[str, Any]], out_dir: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    """``runtimes.csv`` (one row per model and runtime) and ``runtimes.json`` (rows plus provenance)."""
    fields = ["model", "runtime", "test_acc"] + sorted({k for r in rows for k in r} - {"model", "runtime", "test_acc"})
    with atomic_path(out_dir / "runtimes.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return out_dir / "runtimes.csv", write_json(out_dir / "runtimes.json", {**meta, "rows": rows})


def matrix_table(rows: list[dict[str, Any]], batch_sizes: list[int], reference: str = "dense") -> str:
    """Markdown: one row per (model, runtime), ratios to dense in the same runtime; the time per
    example is dense's median in that runtime times the ratio (only ratios are side by side)."""
    dense = {r["runtime"]: r for r in rows if r["model"] == reference}
    head = "| model | runtime | test acc % | " + " | ".join(
        f"us/ex b{b} (x dense) | x dense b{b} [95%]" for b in batch_sizes) + " | notes |"
    lines = [head, "|" + "---|" * (4 + 2 * len(batch_sizes))]
    for r in rows:
        cells = [r["model"], r["runtime"], f"{100 * r['test_acc']:.2f}"]
        for b in batch_sizes:
            base = dense.get(r["runtime"], r)
            cells += [f"{r[f'ratio_b{b}'] * base[f'latency_us_b{b}']:.1f}",
                      fmt_interval(r[f"ratio_b{b}"], r[f"ratio_lo_b{b}"], r[f"ratio_hi_b{b}"])]
        notes = []
        if "graph_breaks" in r:
            notes.append(f"{r['graph_breaks']} graph breaks")
        if r.get("int8_path") == "torchao":
            notes.append("torchao int8 (re-quantized from the torch.ao model)")
        if r["model"] == AA_NAME:
            notes.append("A/A control: a copy of dense timed as another model")
        if "factor_shapes_kept" in r:
            notes.append("factors kept in the optimized graph" if r["factor_shapes_kept"] else "FACTORS MERGED")
        lines.append("| " + " | ".join([*cells, "; ".join(notes)]) + " |")
    return "\n".join(lines)


def runtime_findings(rows: list[dict[str, Any]], batch_sizes: list[int], reference: str = "dense") -> list[str]:
    """Per runtime: the fastest compressed model against dense in that runtime, judged by its interval;
    and which runtime is fastest for dense and for that model."""
    out, big = [], batch_sizes[0]
    for rt in RUNTIMES:
        here = [r for r in rows if r["runtime"] == rt and r["model"] not in (reference, AA_NAME)]
        if not here:
            continue
        best = min(here, key=lambda r: r[f"ratio_b{big}"])
        lo, hi = best[f"ratio_lo_b{big}"], best[f"ratio_hi_b{big}"]
        verdict = ("faster than dense" if hi < 1 else "slower than dense" if lo > 1 else
                   "not distinguishable from dense")
        out.append(f"**{rt}**: the fastest compressed model, {best['model']}, runs at "
                   f"{fmt_interval(best[f'ratio_b{big}'], lo, hi, unit='x')} dense's time at batch {big} "
                   f"({verdict}, 95% interval over rounds), "
                   f"test accuracy {100 * best['test_acc']:.2f}%.")
    for r in rows:
        if r.get("int8_path") == "torchao":
            lo, hi = r[f"vs_eager_lo_b{big}"], r[f"vs_eager_hi_b{big}"]
            verdict = ("faster" if hi < 1 else "slower" if lo > 1 else "not distinguishable")
            eager_acc = next(e["test_acc"] for e in rows if e["model"] == r["model"] and e["runtime"] == "eager")
            out.append(f"**int8 paths** ({r['model']}): torchao's int8 under torch.compile takes "
                       f"{fmt_interval(r[f'vs_eager_b{big}'], lo, hi, unit='x')} the time of torch.ao's "
                       f"dynamic int8 in eager at batch {big} ({verdict}); test accuracy "
                       f"{100 * r['test_acc']:.2f}% (torchao) vs "
                       f"{100 * eager_acc:.2f}% (torch.ao). torch.ao.quantization is deprecated with a removal "
                       "plan; in eager it is the path the comparison keeps (torchao's int8 is meant for "
                       "torch.compile).")
    for name in dict.fromkeys(r["model"] for r in rows):
        others = [r for r in rows if r["model"] == name and f"vs_eager_b{big}" in r]
        if others:
            out.append(f"{name} at batch {big}, time over its own eager time: " + "; ".join(
                f"{r['runtime']} {_vs_eager(r, big)}" for r in others) + ".")
    return out


def runtime_plot(rows: list[dict[str, Any]], path: Path, batch_sizes: list[int]) -> Path:
    """Ratio to dense in the same runtime, per model (groups) and runtime (bars), with intervals."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(batch_sizes), figsize=(6 * len(batch_sizes), 0.5 * len(models) + 2),
                             squeeze=False)
    for ax, b in zip(axes[0], batch_sizes):
        for k, rt in enumerate(RUNTIMES):
            ys, xs, err = [], [], [[], []]
            for i, m in enumerate(models):
                r = next((r for r in rows if r["model"] == m and r["runtime"] == rt), None)
                if r is None:
                    continue
                ys.append(i + (k - 1) * 0.25)
                xs.append(r[f"ratio_b{b}"])
                err[0].append(r[f"ratio_b{b}"] - r[f"ratio_lo_b{b}"])
                err[1].append(r[f"ratio_hi_b{b}"] - r[f"ratio_b{b}"])
            ax.barh(ys, xs, height=0.25, xerr=err, label=rt, capsize=2)
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_yticks(range(len(models)), [m[:40] for m in models], fontsize=7)
        ax.set_xlabel(f"time / dense's in the same runtime, batch {b}")
        ax.invert_yaxis()
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def matrix_report(rows: list[dict[str, Any]], batch_sizes: list[int], meta: dict[str, Any], plot: Path) -> str:
    """RUNTIMES.md's text."""
    p, t = meta["provenance"], meta["timing"]
    lines = ["# Does low rank speed inference up, runtime by runtime?", "",
             f"Generated by `{p['command']}` at commit `{p['git_commit']}` on {p['device']} "
             f"({p['torch_threads']} threads). {meta['n_test']} test images.", "",
             f"Timing: {t['rounds']} rounds in {t['elapsed_s']:.0f} s, stopped by the {t['stopped_by']}"
             + (f". **{t['warning']}**" if t.get("warning") else "."),
             f"A/A control ({AA_NAME}, eager): "
             + "; ".join(f"{_vs_dense(r, b)} at batch {b}" for r in rows if r["model"] == AA_NAME for b in batch_sizes)
             + (f". **{t['aa_warning']}**" if t.get("aa_warning") else " (contains 1.0, as it should)."),
             "Ratios compare each model with dense in the same runtime; intervals are 95% bootstrap intervals "
             "over rounds.", "", f"![runtimes]({plot.name})", "", matrix_table(rows, batch_sizes), "",
             "## Answers", ""]
    lines += [f"- {a}" for a in runtime_findings(rows, batch_sizes)]
    for s in t.get("skipped", []):
        lines.append(f"- {s['model']} does not run in {s['runtime']}: {s['why']}")
    return "\n".join(lines) + "\n"
