"""Text for terminals and reports: intervals, ratios to dense, accuracy differences, timing trust."""

from __future__ import annotations

from typing import Any

from torch_impl.measure.results import CONTROL_FAMILY, Result
from torch_impl.measure.stats import SIGNIFICANCE, fmt_interval


def ratio_text(r: Result, b: int | None = None, unit: str = "") -> str:
    """``0.512 [0.498, 0.526]``: time over dense at batch ``b`` (default: the largest) with its
    95% interval ("n/a" for rows timed alone, as the JAX sweep's are: a ratio of two times taken
    minutes apart is not one)."""
    if b is not None and b not in r.latency_ratio:
        return "n/a (timed alone)"
    return fmt_interval(r.ratio(b), *r.ratio_interval(b), unit=unit)


def p_text(p: float) -> str:
    """McNemar's p with two significant digits, more where two would round it onto (or across)
    ``SIGNIFICANCE``: 0.0505 reads "0.0505", never "0.05"."""
    for digits in range(2, 6):
        text = f"{p:.{digits}g}"
        if (float(text) > SIGNIFICANCE) == (p > SIGNIFICANCE) and float(text) != SIGNIFICANCE or p == SIGNIFICANCE:
            return text
    return f"{p:.6g}"


def verdict(d: float, lo: float, hi: float, p: float) -> str:
    """The one vocabulary for an accuracy difference to dense: "no detectable difference" only
    when McNemar's p is above ``SIGNIFICANCE`` and the 95% interval contains 0; "below dense" /
    "above dense" when both say so; otherwise the disagreement, spelled out."""
    contains = lo <= 0.0 <= hi
    if p > SIGNIFICANCE and contains:
        return "no detectable difference"
    if p <= SIGNIFICANCE and not contains:
        return "below dense" if d < 0 else "above dense"
    if contains:
        return f"the tests disagree: McNemar p = {p_text(p)} but the interval contains 0"
    return f"the tests disagree: McNemar p = {p_text(p)} > {SIGNIFICANCE} but the interval excludes 0"


def no_worse_than_dense(d: float, lo: float, hi: float, p: float) -> bool:
    """At or above dense, or no detectable difference (``verdict``): a disagreement is not."""
    return d >= 0.0 or verdict(d, lo, hi, p) == "no detectable difference"


def diff_text(r: Result, split: str = "test", prose: bool = False) -> str:
    """Accuracy minus dense's in pp with its 95% interval and McNemar's p: ``-0.41 [-0.62, -0.20]
    p=0.0003`` for a table; with ``prose``, ``-0.41 pp [-0.62, -0.20], p = 0.0003``, and the
    ``verdict`` where it is not plainly "below dense"."""
    d = r.get(f"{split}_diff")
    if d is None:
        if prose:
            return "+0.00 pp"
        return "(reference)" if r.family in ("dense", CONTROL_FAMILY) else "n/a"
    lo, hi, p = r.get(f"{split}_diff_lo"), r.get(f"{split}_diff_hi"), r.get(f"{split}_mcnemar_p")
    if prose:
        word = verdict(d, lo, hi, p)
        word = "" if word == "below dense" else f"; {word}"
        return f"{fmt_interval(100 * d, 100 * lo, 100 * hi, '+.2f', ' pp')}, p = {p_text(p)}{word}"
    # below 1e-4 the exact value says nothing more, and "p=2.8e-98" would overrun the column
    return f"{fmt_interval(100 * d, 100 * lo, 100 * hi, '+.2f')} " + ("p<1e-4" if p < 1e-4 else f"p={p_text(p)}")


def split_text(split: dict[str, Any] | None) -> str:
    """Which images the choices were made on, and what the checkpoint's record says of them."""
    if not split:
        return "held-out training images"
    how = {"recorded": "its model.pt records that it never trained on them",
           "derived": "its training config shows it never trained on them (an older model.pt without a split record)",
           "assumed": "ASSUMED held out: the checkpoint records no split (--assume-held-out)"}[split["checkpoint"]]
    return (f"{split['n_val']:,} training images, split seed {split['seed']}, held-out hash "
            f"{split['held_out_sha256'][:12]}; {how}")


def describe_timing(timing: dict[str, Any]) -> str:
    """The timing's trust line for the terminal: rounds, why they stopped, the A/A control
    (loud when its interval excludes 1.0), the roofline and the yardstick."""
    if not timing:
        return ""
    r = timing["rounds"]
    lines = [f"\ntiming: {r['rounds']} interleaved rounds in {r['elapsed_s']:.0f} s, stopped by the "
             f"{r['stopped_by']} (widest ratio interval +-{100 * r['worst_halfwidth']:.1f}%, "
             f"target +-{100 * r['target_halfwidth']:.0f}%)"]
    if r["warning"]:
        lines.append(r["warning"])
    if aa := timing.get("aa_control"):
        lines.append(aa["warning"] or f"A/A control (a copy of dense timed as another model): "
                                      f"{fmt_interval(aa['ratio'], *aa['interval'], unit='x')} at batch "
                                      f"{aa['batch_size']}: contains 1.0, as it should")
    if roof := timing.get("roofline"):
        lines.append(f"roofline ({roof['device']}): fp32 GEMM {roof['gemm_flops_per_s'] / 1e9:.0f} GFLOP/s, "
                     f"read {roof['read_bytes_per_s'] / 1e9:.1f} GB/s (copy {roof['copy_bytes_per_s'] / 1e9:.1f})")
    if y := timing.get("plain_nchw_eager_over_dense"):
        lines.append(f"yardstick: the plain NCHW eager dense model takes "
                     f"{fmt_interval(y['ratio'], *y['interval'], spec='.2f', unit='x')} the harness's time; "
                     "it puts other days' latencies on one scale")
    return "\n".join(lines)
