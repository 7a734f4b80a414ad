"""The method comparison's outputs: the Pareto plot, the table, the targets, and REPORT.md.

Everything here reads ``Result`` fields; the dense model is the result of family "dense",
and plain SVD at f = 0.2 is found by its settings (``answers.plain_svd``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from torch_impl.compare.answers import plain_svd  # noqa: E402
from torch_impl.results import Result, dense_of  # noqa: E402

WITHIN_PP_AT_SVD_LATENCY = 0.5  # target 1: this close to dense at plain SVD f=0.2's latency
WITHIN_PP_AT_QUARTER = 1.5  # target 2: this close to dense at a quarter of its latency
QUARTER = 0.25
SVD_TARGET_FRACTION = 0.2


def pareto_plot(results: list[Result], out_dir: Path, batch_sizes: tuple[int, int]) -> Path:
    """Accuracy vs latency, one panel per batch size, every method a labelled point."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.6))
    families = sorted({r.family for r in results})
    colors = dict(zip(families, plt.cm.tab10.colors))
    dense = dense_of(results)
    for ax, bs in zip(axes, batch_sizes):
        for r in results:
            ax.scatter(r.latency_us[bs], 100 * r.test_acc, color=colors[r.family], s=36, zorder=3, label=r.family)
            ax.annotate(r.method, (r.latency_us[bs], 100 * r.test_acc), fontsize=6.5, xytext=(3, 2),
                        textcoords="offset points")
        ax.axvline(dense.latency_us[bs], color="gray", ls=":", lw=1)
        ax.axhline(100 * dense.test_acc, color="gray", ls=":", lw=1)
        if bs == batch_sizes[0]:
            ax.axvline(QUARTER * dense.latency_us[bs], color="red", ls="--", lw=1,
                       label=f"{QUARTER:.0%} of dense latency")
        handles, labels = ax.get_legend_handles_labels()
        uniq = dict(zip(labels, handles))
        ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="lower right")
        ax.set(xscale="log", xlabel=f"latency per example (us, batch {bs}, log scale)",
               ylabel="test accuracy (%)", title=f"Accuracy vs latency, batch {bs}")
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path = out_dir / "pareto.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def table(results: list[Result], batch_sizes: tuple[int, int]) -> str:
    """A Markdown table, one row per method."""
    dense = dense_of(results)
    big, small = batch_sizes
    out = [f"| method | acc % | d acc pp | acc before FT % | us/ex b{big} | x dense (paired) "
           f"| us/ex b{small} | MACs M | params M | MB stored |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        before = r.get("acc_before_finetune")
        stored = "" if r.bytes is None else f"{r.bytes / 1e6:.1f}"
        out.append(
            f"| {r.method} | {100 * r.test_acc:.2f} | {100 * (r.test_acc - dense.test_acc):+.2f} | "
            f"{'' if before is None else f'{100 * before:.2f}'} | {r.latency_us[big]:.1f} | "
            f"{r.latency_ratio_paired:.3f} | {r.latency_us[small]:.0f} | {r.total_macs / 1e6:.2f} | "
            f"{r.params / 1e6:.2f} | {stored} |")
    return "\n".join(out)


def targets(results: list[Result]) -> dict[str, Any]:
    """The comparison's two targets, met or missed, from the paired latency ratios (method time /
    dense time): within 0.5 pp of dense at no more than plain SVD f=0.2's latency, and within
    1.5 pp at no more than 25% of the dense latency."""
    dense = dense_of(results)
    svd = next((r for r in plain_svd(results) if r.settings["rank_fraction"] == SVD_TARGET_FRACTION), None)
    others = [r for r in results if r is not dense]
    out: dict[str, Any] = {}

    def best(limit: float) -> Result | None:
        ok = [r for r in others if r.latency_ratio_paired <= limit]
        return max(ok, key=lambda r: r.test_acc) if ok else None

    def loss_pp(r: Result) -> float:
        return 100 * (dense.test_acc - r.test_acc)

    if svd is not None:
        b = best(svd.latency_ratio_paired)
        out["at_svd_0.2_latency"] = {
            "limit_ratio": svd.latency_ratio_paired, "best": b and b.method, "d_acc_pp": b and -loss_pp(b),
            "met": bool(b and loss_pp(b) <= WITHIN_PP_AT_SVD_LATENCY)}
    b = best(QUARTER)
    closest = min((r for r in results if loss_pp(r) <= WITHIN_PP_AT_QUARTER), key=lambda r: r.latency_ratio_paired)
    out["at_25pct_latency"] = {
        "best": b and b.method, "d_acc_pp": b and -loss_pp(b), "met": bool(b and loss_pp(b) <= WITHIN_PP_AT_QUARTER),
        "fastest_within_1.5pp": closest.method, "its_ratio": closest.latency_ratio_paired}
    return out


def write_report(path: Path, results: list[Result], batch_sizes: tuple[int, int], plot: Path,
                 verdicts: dict[str, Any], answers: list[str], meta: dict[str, Any]) -> Path:
    lines = ["# Compressing the take-home network: SVD and what beats it", "",
             f"Generated by `{meta['command']}` at commit `{meta['git_commit']}` on {meta['device']} "
             f"({meta['threads']} threads). Dense model: `{meta['checkpoint']}`. All latencies come from "
             "`torch_impl.latency` in this one run; `x dense (paired)` is the method's time over the dense "
             "model's, the two timed alternately (robust to the machine's drift).", "",
             f"![Pareto plot]({plot.name})", "", table(results, batch_sizes), "", "## Answers", ""]
    lines += [f"- {a}" for a in answers]
    lines += ["", "## Targets", ""]
    a = verdicts.get("at_svd_0.2_latency")
    if a:
        lines.append(f"- At no more than plain SVD f=0.2's latency ({a['limit_ratio']:.3f}x dense), within "
                     f"{WITHIN_PP_AT_SVD_LATENCY} pp of dense: **{'met' if a['met'] else 'missed'}**; best there: "
                     f"{a['best']} " + (f"({a['d_acc_pp']:+.2f} pp)." if a["best"] else "(none)."))
    b = verdicts["at_25pct_latency"]
    lines.append(f"- At no more than {QUARTER:.0%} of dense latency, within {WITHIN_PP_AT_QUARTER} pp: "
                 f"**{'met' if b['met'] else 'missed'}**; "
                 + (f"best there: {b['best']} ({b['d_acc_pp']:+.2f} pp); " if b["best"] else "no method is that fast; ")
                 + f"the fastest method within {WITHIN_PP_AT_QUARTER} pp is {b['fastest_within_1.5pp']} at "
                 f"{b['its_ratio']:.3f}x.")
    path.write_text("\n".join(lines) + "\n")
    return path
