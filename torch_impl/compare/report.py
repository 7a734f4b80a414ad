"""The method comparison's outputs: the Pareto plot, the table, the targets, and REPORT.md.

Everything here reads ``Result`` fields; the dense model is the result of family "dense",
and plain SVD at f = 0.2 is found by its settings (``answers.plain_svd``). Rows are chosen on
validation accuracy; test accuracy is what they report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from torch_impl.measure.stats import fmt_interval
from torch_impl.measure.text import p_text, ratio_text, split_text, verdict

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from torch_impl.compare.answers import pareto_front, plain_svd  # noqa: E402
from torch_impl.compare.frontier import FRONTIER_FAMILIES, frontier  # noqa: E402
from torch_impl.files import atomic_path, write_text  # noqa: E402
from torch_impl.measure.results import Result, candidates, dense_of  # noqa: E402
from torch_impl.measure.targets import verdict_line  # noqa: E402

WITHIN_PP_AT_SVD_LATENCY = 0.5  # target 1: this close to dense at plain SVD f=0.2's latency
WITHIN_PP_AT_QUARTER = 1.5  # target 2: this close to dense at a quarter of its latency
QUARTER = 0.25
SVD_TARGET_FRACTION = 0.2
ZOOM_PP = 3.0  # the zoomed panels show the rows this close to dense


def _acc_err(results: list[Result], dense: Result) -> list[list[float]]:
    """Test-accuracy error bars (pp) from each row's 95% interval of its difference to dense."""
    lo = [100 * (r.test_acc - dense.test_acc - r.get("test_diff_lo", r.test_acc - dense.test_acc)) for r in results]
    hi = [100 * (dense.test_acc + r.get("test_diff_hi", r.test_acc - dense.test_acc) - r.test_acc) for r in results]
    return [lo, hi]


def _ratio_err(results: list[Result], b: int) -> list[list[float]]:
    return [[r.ratio(b) - r.ratio_interval(b)[0] for r in results], [r.ratio_interval(b)[1] - r.ratio(b)
                                                                       for r in results]]


def pareto_plot(results: list[Result], out_dir: Path, batch_sizes: tuple[int, int]) -> Path:
    """Test accuracy vs time over dense with both 95% intervals: every method, then zoomed on the
    rows within ``ZOOM_PP`` of dense at both batch sizes. Points carry the table's ids (keyed
    in the right-hand panel, with the colours and lines); the line joins the front chosen on
    validation accuracy."""
    fig, axes = plt.subplots(1, 4, figsize=(22, 6), gridspec_kw={"width_ratios": [1, 1, 1, 0.75]})
    families = sorted({r.family for r in results})
    colors = dict(zip(families, plt.cm.tab10.colors + plt.cm.Dark2.colors))
    dense = dense_of(results)
    front = pareto_front(results)
    front_without_new_families = pareto_front([r for r in results if r.family not in FRONTIER_FAMILIES])
    big = batch_sizes[0]
    near = [r for r in results if 100 * (dense.test_acc - r.test_acc) <= ZOOM_PP]
    panels = [(axes[0], results, big, "every method"), (axes[1], near, big, f"within {ZOOM_PP:g} pp of dense"),
              (axes[2], near, batch_sizes[1], f"within {ZOOM_PP:g} pp of dense")]
    ids = {id(r): i + 1 for i, r in enumerate(results)}
    for ax, rows, b, what in panels:
        for fam in families:
            fr = [r for r in rows if r.family == fam]
            if fr:
                ax.errorbar([r.ratio(b) for r in fr], [100 * r.test_acc for r in fr], xerr=_ratio_err(fr, b),
                            yerr=_acc_err(fr, dense), fmt="o", ms=5, color=colors[fam], capsize=2, label=fam,
                            zorder=3)
        for r in rows:
            ax.annotate(str(ids[id(r)]), (r.ratio(b), 100 * r.test_acc), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        fr = [r for r in front if r in rows]
        ax.step([r.ratio(b) for r in fr], [100 * r.test_acc for r in fr], where="post", color="black", lw=1,
                alpha=0.6, label="front (chosen on validation)")
        if front_without_new_families != front:
            of = [r for r in front_without_new_families if r in rows]
            ax.step([r.ratio(b) for r in of], [100 * r.test_acc for r in of], where="post", color="gray", lw=1,
                    ls="--", alpha=0.8, label=f"front without {' / '.join(FRONTIER_FAMILIES)}")
        ax.axhline(100 * dense.test_acc, color="gray", ls=":", lw=1)
        ax.axvline(1.0, color="gray", ls=":", lw=1)
        if b == big:
            ax.axvline(QUARTER, color="red", ls="--", lw=1, label=f"{QUARTER:.0%} of dense time")
        ax.set(xlabel=f"time over dense at batch {b} (95% interval)", ylabel="test accuracy (%, 95% interval)",
               title=f"batch {b}: {what}")
        ax.grid(alpha=0.3)
    # The key sits in the id panel, where it covers no point.
    axes[3].legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="lower left")
    axes[3].axis("off")
    axes[3].text(0, 1, "\n".join(f"{ids[id(r)]:>2}  {r.method[:58]}" for r in results), va="top",
                 family="monospace", fontsize=7, transform=axes[3].transAxes)
    fig.tight_layout()
    path = out_dir / "pareto.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path




def table(results: list[Result], batch_sizes: tuple[int, int]) -> str:
    """A Markdown table, one row per method, ids as on the plot."""
    big, small = batch_sizes
    dense = dense_of(results)
    out = [f"| id | method | val acc % | test acc % | d test pp [95%] | McNemar p | x dense b{big} [95%] "
           f"| us/ex b{big} (x dense) | x dense b{small} [95%] | us/ex b{small} (x dense) | roofline b{big} / b{small} "
           "| MACs M "
           "| params M (stored) | MB stored | MB read per call |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(results, 1):
        d = r.get("test_diff")
        diff = ("(reference)" if d is None
                else fmt_interval(100 * d, 100 * r.get("test_diff_lo"), 100 * r.get("test_diff_hi"), "+.2f"))
        p = "" if d is None else p_text(r.get("test_mcnemar_p"))
        if d is not None and verdict(d, r.get("test_diff_lo"), r.get("test_diff_hi"),
                                     r.get("test_mcnemar_p")).startswith("the tests disagree"):
            p += " (tests disagree)"
        roof = " / ".join(f"{100 * r.get(f'roofline_fraction_b{b}', float('nan')):.1f}%" for b in batch_sizes)
        stored = "" if r.bytes is None else f"{r.bytes / 1e6:.1f}"
        read = r.get("weight_bytes_read")
        name = f"[{r.method}]({r.get('model_dir')})" if r.get("model_dir") else r.method  # a saved model's files
        out.append(
            f"| {i} | {name} | {100 * r.val_acc:.2f} | {100 * r.test_acc:.2f} | {diff} | {p} | "
            f"{ratio_text(r, big)} | {r.ratio(big) * dense.latency_us[big]:.1f} | {ratio_text(r, small)} | "
            f"{r.ratio(small) * dense.latency_us[small]:.0f} | "
            f"{roof} | {r.total_macs / 1e6:.2f} | {r.params / 1e6:.2f} | {stored} | "
            f"{'' if read is None else f'{read / 1e6:.1f}'} |")
    return "\n".join(out)


def _verdict(r: Result | None, within_pp: float) -> dict[str, Any]:
    """A row chosen on validation, judged on its test difference and that difference's interval."""
    if r is None:
        return {"best": None, "met": False, "decided": "no row qualifies"}
    d, lo, hi = (100 * r.get(k, 0.0) for k in ("test_diff", "test_diff_lo", "test_diff_hi"))
    decided = ("within the line with 95% confidence" if lo >= -within_pp else
               "beyond the line with 95% confidence" if hi < -within_pp else "the interval straddles the line")
    return {"best": r.method, "val_acc": r.val_acc, "test_acc": r.test_acc, "d_acc_pp": d,
            "d_acc_pp_interval": [lo, hi], "mcnemar_p": r.get("test_mcnemar_p"), "ratio": r.ratio(),
            "ratio_interval": list(r.ratio_interval()), "met": d >= -within_pp, "decided": decided}


def targets(results: list[Result]) -> dict[str, Any]:
    """The comparison's two targets. The row is chosen on validation accuracy (the most accurate
    on validation at or below the latency limit); whether the line is met is then read off its
    test difference to dense, with that difference's interval: within 0.5 pp of dense at no more
    than plain SVD f=0.2's latency, and within 1.5 pp at no more than 25% of the dense latency."""
    dense = dense_of(results)
    svd = next((r for r in plain_svd(results) if r.settings["rank_fraction"] == SVD_TARGET_FRACTION), None)
    others = candidates(results)
    out: dict[str, Any] = {"decided_on": "validation accuracy (rows); test accuracy (lines)"}

    def best(limit: float) -> Result | None:
        ok = [r for r in others if r.ratio() <= limit]
        return max(ok, key=lambda r: r.val_acc) if ok else None

    if svd is not None:
        out["at_svd_0.2_latency"] = {"limit_ratio": svd.ratio(),
                                     **_verdict(best(svd.ratio()), WITHIN_PP_AT_SVD_LATENCY)}
    out["at_25pct_latency"] = _verdict(best(QUARTER), WITHIN_PP_AT_QUARTER)
    close = [r for r in others if 100 * (dense.val_acc - r.val_acc) <= WITHIN_PP_AT_QUARTER]
    fastest = min(close, key=lambda r: r.ratio()) if close else None
    out["fastest_within_1.5pp_on_validation"] = _verdict(fastest, WITHIN_PP_AT_QUARTER)
    out["frontier"] = frontier(results)
    return out


def _line(name: str, v: dict[str, Any], within_pp: float) -> str:
    if v["best"] is None:
        return f"- {name}: **missed**; no method qualifies."
    lo, hi = v["d_acc_pp_interval"]
    miss = "" if v["met"] else f", {-v['d_acc_pp'] - within_pp:.2f} pp beyond the line"
    return (f"- {name}: **{'met' if v['met'] else 'missed'}** ({v['decided']}{miss}); chosen on validation: "
            f"{v['best']} at {fmt_interval(v['ratio'], *v['ratio_interval'], unit='x')} "
            f"dense time, validation {100 * v['val_acc']:.2f}%, test {100 * v['test_acc']:.2f}% "
            f"({fmt_interval(v['d_acc_pp'], lo, hi, '+.2f', ' pp')}, McNemar p = {p_text(v['mcnemar_p'])}).")


def write_report(path: Path, results: list[Result], batch_sizes: tuple[int, int], plot: Path,
                 verdicts: dict[str, Any], answers: list[str], meta: dict[str, Any], recommended: str = "") -> Path:
    timing = meta.get("timing") or {}
    rounds, roof = timing.get("rounds") or {}, timing.get("roofline")
    lines = ["# Compressing the take-home network: SVD and what beats it", ""]
    if recommended:
        lines += ["## Recommendation (`recommended.json`)", "", recommended, "",
                  "Each model is chosen on validation accuracy among those within the budget at the upper end of "
                  "their time interval; the test difference is reported once. Times are over dense fp32 eager's, "
                  "measured side by side.", "", "## How this was measured", ""]
    lines += [f"Generated by `{meta['command']}` at commit `{meta['git_commit']}` on {meta['device']} "
             f"({meta['threads']} threads). Dense model: `{meta['checkpoint']}`.", "",
             "How to read it: every choice (which row is best, the front) is made on the validation split "
             f"({split_text(meta.get('split'))}); the test set is scored once per final model and only "
             "reported. `d test pp` is the test accuracy minus dense's, with a paired-bootstrap 95% interval over "
             "the test images, and McNemar's exact p; \"no detectable difference\" means p > 0.05 and an interval "
             "that contains 0, and a row where the two disagree says so. `x dense` is the model's time over "
             "dense's from interleaved timing rounds (in each, the model's call right beside one of dense's), "
             "with a 95% interval over rounds that holds under the stopping rule (none below 3 rounds); `us/ex` "
             "is dense's median time per example times that ratio (only the ratios were measured side by side); "
             "`roofline` is the share of "
             "the machine's bound (fp32 GEMM rate, read bandwidth; int8 rows can pass 100%) the model reaches. "
             "`MB read per call` differs from `MB stored` where a layer reads a cached dense product."]
    if rounds:
        lines += ["", f"Timing: {rounds['rounds']} rounds in {rounds['elapsed_s']:.0f} s, stopped by the "
                  f"{rounds['stopped_by']} (widest interval +-{100 * rounds['worst_halfwidth']:.1f}%, target "
                  f"+-{100 * rounds['target_halfwidth']:.0f}%)." + (f" **{rounds['warning']}**" if rounds["warning"]
                                                                      else "")]
    if aa := timing.get("aa_control"):
        lines.append(f"A/A control: {fmt_interval(aa['ratio'], *aa['interval'], unit='x')}"
                     + (f". **{aa['warning']}**" if aa["warning"] else ", containing 1.0 as it should."))
    if off := [r for r in results if str(r.get("timing_stopped", "")).startswith("off the front")]:
        lines.append("Timed until clearly off the front (racing; their intervals may be wider than the target): "
                     + "; ".join(f"{r.method} ({r.get('timing_stopped')})" for r in off) + ".")
    if failures := timing.get("failures"):
        lines.append(f"**{len(failures)} recipe(s) failed and have no row**: "
                     + "; ".join(f"{f['method']} ({f['error']})" for f in failures)
                     + ". Rerunning the same command builds only these (and any unfinished) again.")
    if loaded := timing.get("points_loaded"):
        lines.append(f"{len(loaded)} model(s) were built by an earlier, interrupted run of this command and loaded "
                     "from `points/` (timing and scoring are always this run's).")
    if roof:
        lines.append(f"Roofline: fp32 GEMM {roof['gemm_flops_per_s'] / 1e9:.0f} GFLOP/s ({roof['gemm_n']}^3), "
                     f"read {roof['read_bytes_per_s'] / 1e9:.1f} GB/s, copy {roof['copy_bytes_per_s'] / 1e9:.1f} GB/s "
                     f"(over {roof['buffer_bytes'] / 1e6:.0f} MB, the dense weights' size).")
    lines += ["", f"![Pareto plot]({plot.name})", "", table(results, batch_sizes), "", "## Answers", ""]
    lines += [f"- {a}" for a in answers]
    lines += ["", "## Targets (rows chosen on validation accuracy, lines judged on test accuracy)", ""]
    if a := verdicts.get("at_svd_0.2_latency"):
        lines.append(_line(f"At no more than plain SVD f=0.2's latency ({a['limit_ratio']:.3f}x dense), within "
                           f"{WITHIN_PP_AT_SVD_LATENCY} pp of dense", a, WITHIN_PP_AT_SVD_LATENCY))
    lines.append(_line(f"At no more than {QUARTER:.0%} of dense latency, within {WITHIN_PP_AT_QUARTER} pp",
                       verdicts["at_25pct_latency"], WITHIN_PP_AT_QUARTER))
    lines.append(_line(f"The fastest method within {WITHIN_PP_AT_QUARTER} pp of dense on validation",
                       verdicts["fastest_within_1.5pp_on_validation"], WITHIN_PP_AT_QUARTER))
    if front := verdicts.get("frontier"):
        lines += ["", "## Frontier targets (chosen on validation, judged on test)", ""]
        lines += [verdict_line(name, v) for name, v in front.items()]
    write_text(path, "\n".join(lines) + "\n")
    return path
