"""Sweep plots (matplotlib, PNG): accuracy vs rank, latency vs rank, accuracy vs latency.

They take plain result rows (``torch_impl.measure.sweep`` schema), so the torch and JAX sweeps
draw the same figures; several row sets overlay (e.g. both frameworks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from torch_impl.files import atomic_path  # noqa: E402
from torch_impl.model import DEFAULT_POOLING, MLP_SHAPES, mlp_shapes  # noqa: E402

STYLE = {"factorized": "o-", "reconstructed": "s--"}


def mac_break_even_fraction(shapes: tuple[tuple[int, int], ...] = MLP_SHAPES) -> float:
    """The fraction f at which the factorized MLP costs as many MACs as the dense one."""
    return sum(i * o for i, o in shapes) / sum(min(i, o) * (i + o) for i, o in shapes)


def _series(rows: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    return sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["rank_fraction"])


def _label(name: str, mode: str) -> str:
    return f"{name} {mode}" if name else mode


def plot_sweep(runs: dict[str, list[dict[str, Any]]], out_dir: str | Path, batch_sizes=(10_000, 1)) -> list[Path]:
    """``runs`` maps a name ('' for one run, or 'torch'/'jax') to its rows; returns the PNG paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    first = next(iter(runs.values()))[0]
    f_star = mac_break_even_fraction(mlp_shapes(first.get("pooling") or DEFAULT_POOLING))

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, rows in runs.items():
        dense = next(r for r in rows if r["mode"] == "dense")
        for mode in ("factorized", "reconstructed"):
            s = _series(rows, mode)
            if s:
                ax.plot([100 * r["rank_fraction"] for r in s], [100 * r["test_acc"] for r in s], STYLE[mode],
                        label=_label(name, mode), alpha=0.8)
        ax.axhline(100 * dense["test_acc"], ls=":", color="gray", label=_label(name, "dense"))
    ax.set(xlabel="rank (% of min(in, out), every linear layer)", ylabel="test accuracy (%)",
           title="Accuracy vs rank")
    ax.legend()
    ax.grid(alpha=0.3)
    paths.append(_save(fig, out_dir / "accuracy_vs_rank.png"))

    fig, axes = plt.subplots(1, len(batch_sizes), figsize=(6.0 * len(batch_sizes), 4.4), squeeze=False)
    for ax, bs in zip(axes[0], batch_sizes):
        key = f"latency_us_b{bs}"
        for name, rows in runs.items():
            dense = next(r for r in rows if r["mode"] == "dense")
            for mode in ("factorized", "reconstructed"):
                s = _series(rows, mode)
                if s:
                    ax.errorbar([100 * r["rank_fraction"] for r in s], [r[key] for r in s],
                                yerr=[r[f"latency_iqr_us_b{bs}"] / 2 for r in s], fmt=STYLE[mode],
                                label=_label(name, mode), capsize=2, alpha=0.8)
            ax.axhline(dense[key], ls=":", color="gray", label=_label(name, "dense"))
        ax.axvline(100 * f_star, color="red", lw=1, label=f"MAC break-even f = {f_star:.2f}")
        ax.axvspan(50, 66.7, color="red", alpha=0.07, label="per-layer break-even 0.50-0.67")
        ax.set(xlabel="rank (% of min(in, out))", ylabel="latency per example (us)",
               title=f"Latency vs rank, batch {bs}", ylim=(0, None))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    paths.append(_save(fig, out_dir / "latency_vs_rank.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    big = batch_sizes[0]
    for name, rows in runs.items():
        dense = next(r for r in rows if r["mode"] == "dense")
        for mode in ("factorized", "reconstructed"):
            s = _series(rows, mode)
            if s:
                x, xerr = _ratios(s, dense, big)
                acc = [100 * r["test_acc"] for r in s]
                yerr = ([[100 * (r["test_acc"] - r.get("test_diff_lo", r["test_acc"]) - dense["test_acc"]) for r in s],
                         [100 * (r.get("test_diff_hi", r["test_acc"]) + dense["test_acc"] - r["test_acc"]) for r in s]]
                        if all("test_diff_lo" in r for r in s) else None)
                ax.errorbar(x, acc, xerr=xerr, yerr=yerr, fmt=STYLE[mode], label=_label(name, mode), capsize=2,
                            alpha=0.8)
                for r, xi in zip(s, x):
                    ax.annotate(f"{r['rank_fraction']:.1f}", (xi, 100 * r["test_acc"]), fontsize=7,
                                xytext=(3, 3), textcoords="offset points")
        ax.plot([1.0], [100 * dense["test_acc"]], "k*", ms=12, label=_label(name, "dense"))
    ax.axvline(1.0, color="gray", ls=":", lw=1)
    ax.set(xlabel=f"time over the dense model's at batch {big} (95% intervals)",
           ylabel="test accuracy (%, 95% interval of the difference to dense)",
           title="Accuracy vs latency (labels: rank fraction)", xlim=(0, None))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    paths.append(_save(fig, out_dir / "accuracy_vs_latency.png"))
    return paths


def _ratios(series: list[dict[str, Any]], dense: dict[str, Any], b: int) -> tuple[list[float], Any]:
    """Each point's time over dense at batch ``b`` and its interval as error bars: the
    interleaved rounds' ratio where the row has one, else the two medians' ratio (no bar)."""
    if all(f"latency_ratio_b{b}" in r for r in series):
        x = [r[f"latency_ratio_b{b}"] for r in series]
        return x, [[xi - r[f"latency_ratio_lo_b{b}"] for xi, r in zip(x, series)],
                   [r[f"latency_ratio_hi_b{b}"] - xi for xi, r in zip(x, series)]]
    return [r[f"latency_us_b{b}"] / dense[f"latency_us_b{b}"] for r in series], None


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path
