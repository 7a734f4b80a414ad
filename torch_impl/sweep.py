"""Rank sweep of a trained network: accuracy, latency, parameters and MACs per rank fraction."""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from torch_impl.cost import count_macs, total_and_mlp_macs
from torch_impl.inference import accuracy
from torch_impl.latency import DEFAULT_BATCH_SIZES, measure_latency, paired_speedup
from torch_impl.lowrank import MODES, compress_model, model_svds, rank_from_fraction
from torch_impl.results import Result, dense_of, stored_bytes, sweep_method

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


def measure_into(result: Result, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 batch_sizes: list[int], dense: nn.Module | None = None, repeats: int | None = None,
                 macs: dict[str, int] | None = None) -> Result:
    """Fill ``result`` with ``model``'s accuracy, cost, stored size and latency, all through the
    same harness; with ``dense``, also its time over the dense model's, the two timed alternately
    (the ratio that matters on a machine whose speed drifts). ``macs``: counted beforehand, for
    models whose layers hide from ``count_macs``'s hooks (int8)."""
    result.test_acc = accuracy(model, images, labels)
    result.total_macs, result.mlp_macs = total_and_mlp_macs(macs if macs is not None else count_macs(model))
    result.params, result.bytes = sum(p.numel() for p in model.parameters()), stored_bytes(model)
    for res in measure_latency(model, images, batch_sizes, repeats=repeats):
        result.latency_us[res.batch_size], result.latency_iqr_us[res.batch_size] = res.per_example_us, res.iqr_us
        result.measured.update(threads=res.threads, latency_method=res.method)
    if dense is not None:
        result.latency_ratio_paired = (1.0 if model is dense
                                       else 1.0 / paired_speedup(dense, model, images, batch_sizes[0]))
    return result


def _point(model: nn.Module, mode: str, fraction: float | None, images: torch.Tensor, labels: torch.Tensor,
           batch_sizes: list[int], repeats: int | None, ranks: list[int | None],
           dense: nn.Module | None = None) -> dict[str, Any]:
    result = Result(sweep_method(mode, fraction), mode, float("nan"),
                    settings={"framework": "torch", "mode": mode, "rank_fraction": fraction, "ranks": ranks})
    return measure_into(result, model, images, labels, batch_sizes, dense, repeats).to_row()


def run_sweep(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
              fractions: Iterable[float] = DEFAULT_FRACTIONS, modes: Iterable[str] = MODES,
              batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES, repeats: int | None = None,
              progress: bool = True, paired: bool = True,
              device: str | torch.device | None = None) -> list[dict[str, Any]]:
    """The dense baseline, then one row per (mode, fraction), all from the same harness.

    With ``paired``, each point's speed-up over dense at the first batch size is also timed
    with the two models alternating (``latency_ratio_paired``: this model's time over the dense
    model's), free of the machine's drift. ``device`` (default: the model's) is where every
    point is evaluated and timed; the caller's model stays where it is.
    """
    model = model.eval()
    if device is not None and torch.device(device) != next(model.parameters()).device:
        model = copy.deepcopy(model).to(device)
    device = next(model.parameters()).device
    images, labels = images.to(device), labels.to(device)
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


CSV_FIELDS = ("method", "family", "framework", "mode", "rank_fraction", "test_acc", "latency_ratio_paired",
              "latency_us_b10000", "latency_iqr_us_b10000", "latency_us_b1", "latency_iqr_us_b1", "params", "bytes",
              "mlp_macs", "total_macs", "ranks")


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
    """A plain-text table per point: accuracy change from dense, and the time over the dense
    model's (``x dense``: from the separate timings, and ``paired`` where the two were timed
    alternately; below 1 is faster)."""
    results = [Result.from_row(r) for r in rows]
    big, small = batch_sizes
    dense = dense_of(results)
    head = (f"{'mode':<14}{'f':>5}{'acc %':>8}{'d acc pp':>10}{f'us b{big}':>12}{'x dense':>9}"
            f"{'paired':>8}{f'us b{small}':>9}{'MACs M':>9}")
    lines = [head, "-" * len(head)]
    for r in results:
        f = "" if r.settings.get("rank_fraction") is None else f"{r.settings['rank_fraction']:.1f}"
        paired = r.latency_ratio_paired if r.latency_ratio_paired is not None else float("nan")
        lines.append(f"{r.family:<14}{f:>5}{100 * r.test_acc:>8.2f}{100 * (r.test_acc - dense.test_acc):>+10.2f}"
                     f"{r.latency_us[big]:>12.1f}{r.latency_us[big] / dense.latency_us[big]:>9.2f}{paired:>8.2f}"
                     f"{r.latency_us[small]:>9.0f}{r.total_macs / 1e6:>9.2f}")
    return "\n".join(lines)
