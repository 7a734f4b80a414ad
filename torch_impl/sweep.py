"""Rank sweep of a trained network: accuracy, latency, parameters and MACs per rank fraction."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from torch_impl.cost import count_macs
from torch_impl.inference import accuracy
from torch_impl.latency import DEFAULT_BATCH_SIZES, measure_latency, paired_speedup
from torch_impl.lowrank import MODES, compress_model, model_svds, rank_from_fraction

DEFAULT_FRACTIONS = tuple(round(1.0 - 0.1 * i, 1) for i in range(10))  # 1.0, 0.9, ..., 0.1


def parse_fractions(text: str) -> list[float]:
    try:
        fractions = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--fractions takes comma-separated numbers like 1.0,0.5,0.1, got {text!r}") from None
    for f in fractions:
        rank_from_fraction(f, 1, 1)  # same check and message as the layer itself
    if not fractions:
        raise ValueError("--fractions is empty")
    return fractions


def _point(model: nn.Module, mode: str, fraction: float | None, images: torch.Tensor, labels: torch.Tensor,
           batch_sizes: list[int], repeats: int | None, ranks: list[int | None],
           dense: nn.Module | None = None) -> dict[str, Any]:
    macs = count_macs(model)
    row: dict[str, Any] = {
        "framework": "torch", "mode": mode, "rank_fraction": fraction,
        "ranks": ranks, "test_acc": accuracy(model, images, labels),
        "params": sum(p.numel() for p in model.parameters()),
        "mlp_macs": sum(v for k, v in macs.items() if k.startswith("classifier")),
        "total_macs": sum(macs.values()),
    }
    for res in measure_latency(model, images, batch_sizes, repeats=repeats):
        row[f"latency_us_b{res.batch_size}"] = res.per_example_us
        row[f"latency_iqr_us_b{res.batch_size}"] = res.iqr_us
        row["threads"], row["latency_method"] = res.threads, res.method
    if dense is not None:  # the speed-up that matters, timed side by side with the dense model
        row[f"speedup_paired_b{batch_sizes[0]}"] = (
            1.0 if model is dense else paired_speedup(dense, model, images, batch_sizes[0]))
    return row


def run_sweep(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
              fractions: Iterable[float] = DEFAULT_FRACTIONS, modes: Iterable[str] = MODES,
              batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES, repeats: int | None = None,
              progress: bool = True, paired: bool = True,
              device: str | torch.device | None = None) -> list[dict[str, Any]]:
    """The dense baseline, then one row per (mode, fraction), all from the same harness.

    With ``paired``, each point's speed-up over dense at the first batch size is also timed
    with the two models alternating (``speedup_paired_b<N>``), free of the machine's drift.
    """
    model = model.eval()
    fractions, modes, batch_sizes = list(fractions), list(modes), list(batch_sizes)
    for m in modes:
        if m not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {m!r}")
    points = [("dense", None)] + [(m, f) for m in modes for f in fractions]
    svds = model_svds(model)
    rows = []
    bar = tqdm(points, desc="rank sweep", unit="point", disable=not progress)
    for mode, fraction in bar:
        bar.set_postfix_str(f"{mode} {fraction if fraction is not None else ''}")
        if mode == "dense":
            net, ranks = model, [None] * sum(isinstance(m, nn.Linear) for m in model.modules())
        else:
            net, report = compress_model(model, rank_fraction=fraction, mode=mode, svds=svds)
            ranks = [r.rank for r in report]
        rows.append(_point(net, mode, fraction, images, labels, batch_sizes, repeats, ranks,
                           dense=model if paired else None))
    return rows


CSV_FIELDS = ("framework", "mode", "rank_fraction", "test_acc", "latency_us_b10000", "latency_iqr_us_b10000",
              "latency_us_b1", "latency_iqr_us_b1", "params", "mlp_macs", "total_macs", "ranks")


def _ranks_text(ranks: list | dict | None) -> str:
    """Ranks as one CSV cell: ``3000 dense 8`` (a list) or ``classifier.0:64 ...`` (a dict)."""
    if ranks is None:
        return ""
    if isinstance(ranks, dict):
        return " ".join(f"{k}:{'dense' if v is None else v}" for k, v in ranks.items())
    return " ".join("dense" if x is None else str(x) for x in ranks)


def write_results(rows: list[dict[str, Any]], out_dir: str | Path, meta: dict[str, Any],
                  stem: str = "sweep") -> tuple[Path, Path]:
    """``<stem>.csv`` (one row per point) and ``<stem>.json`` (rows plus provenance)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fields = list(CSV_FIELDS) + sorted({k for r in rows for k in r} - set(CSV_FIELDS))
    csv_path, json_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.json"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({**r, "ranks": _ranks_text(r.get("ranks"))})
    json_path.write_text(json.dumps({**meta, "rows": rows}, indent=2, default=str) + "\n")
    return csv_path, json_path


def format_table(rows: list[dict[str, Any]], batch_sizes: tuple[int, int] = DEFAULT_BATCH_SIZES) -> str:
    """A plain-text table: accuracy change from dense, speed-up over dense (from the separate
    timings, and from the paired ones where measured), per point."""
    big, small = (f"latency_us_b{b}" for b in batch_sizes)
    dense = next(r for r in rows if r["mode"] == "dense")
    paired = f"speedup_paired_b{batch_sizes[0]}"
    head = (f"{'mode':<14}{'f':>5}{'acc %':>8}{'d acc pp':>10}{f'us b{batch_sizes[0]}':>12}{'speedup':>9}"
            f"{'paired':>8}{f'us b{batch_sizes[1]}':>9}{'MACs M':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        f = "" if r["rank_fraction"] is None else f"{r['rank_fraction']:.1f}"
        lines.append(f"{r['mode']:<14}{f:>5}{100 * r['test_acc']:>8.2f}"
                     f"{100 * (r['test_acc'] - dense['test_acc']):>+10.2f}{r[big]:>12.1f}"
                     f"{dense[big] / r[big]:>9.2f}{r.get(paired, float('nan')):>8.2f}{r[small]:>9.0f}"
                     f"{r['total_macs'] / 1e6:>9.2f}")
    return "\n".join(lines)
