"""Rank sweep of a trained network: accuracy, latency, parameters and MACs per rank fraction."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from torch_impl.factorize import compress_model
from torch_impl.inference import PlainEager
from torch_impl.lowrank import MODES, model_svds, rank_from_fraction
from torch_impl.measure.latency import DEFAULT_BATCH_SIZES, DEFAULT_TIMING, TimingProtocol
from torch_impl.measure.results import Result, dense_of, sweep_method
from torch_impl.measure.roofline import measure_roofline
from torch_impl.measure.score import CONTROL_INDEX, control_result, evaluate_into, time_into, timing_summary
from torch_impl.measure.text import diff_text, ratio_text

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


def run_sweep(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
              fractions: Iterable[float] = DEFAULT_FRACTIONS, modes: Iterable[str] = MODES,
              batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES, progress: bool = True, control: bool = True,
              yardstick: bool = False, roofline: bool = True, device: str | torch.device | None = None,
              protocol: TimingProtocol = DEFAULT_TIMING,
              journal: str | Path | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The dense baseline, its A/A control (``control``), then one row per (mode, fraction),
    each evaluated on the test set and all timed together in interleaved rounds
    (``torch_impl.measure.latency``); returns the rows and the timing summary (``timing_summary``;
    with ``yardstick``, also ``PlainEager``'s time over the harness's for the dense model).
    ``device`` (default: the model's) is where every point is evaluated and timed; the
    caller's model stays where it is. ``journal``: a file that keeps each finished timing round,
    so that a killed sweep of the same points resumes from them (``round_journal``)."""
    model = model.eval()
    if device is not None and torch.device(device) != next(model.parameters()).device:
        model = copy.deepcopy(model).to(device)
    device = next(model.parameters()).device
    images, labels = images.to(device), labels.to(device)
    fractions, modes, batch_sizes = list(fractions), list(modes), list(batch_sizes)
    for m in modes:
        if m not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {m!r}")
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    pooling = getattr(model, "pooling", None)
    dense = Result("dense", "dense", float("nan"),
                   settings={"framework": "torch", "pooling": pooling, "mode": "dense", "rank_fraction": None,
                             "ranks": [None] * n_linear})
    dense_correct = evaluate_into(dense, model, images, labels)
    entries = [(dense, model)]
    if control:
        entries.append((control_result(dense), copy.deepcopy(model)))
    svds = model_svds(model)
    for mode, fraction in tqdm([(m, f) for m in modes for f in fractions], desc="rank sweep: build and evaluate",
                               unit="point", disable=not progress):
        net, report = compress_model(model, rank_fraction=fraction, mode=mode, svds=svds)
        result = Result(sweep_method(mode, fraction), mode, float("nan"), settings={
            "framework": "torch", "pooling": pooling, "mode": mode, "rank_fraction": fraction,
            "ranks": [r.rank for r in report]})
        evaluate_into(result, net, images, labels, dense_correct)
        entries.append((result, net))
    chunks = {}
    if yardstick:
        entries.append((Result("dense, plain NCHW eager", "yardstick", dense.test_acc), PlainEager(model)))
        chunks[len(entries) - 1] = None
        entries[-1][0].measured["weight_bytes_read"] = dense.measured["weight_bytes_read"]
    roof = measure_roofline(device, dense.measured["weight_bytes_read"]) if roofline else None
    rounds = time_into(entries, images, batch_sizes, roof, chunks, progress, journal=journal, protocol=protocol)
    summary = timing_summary(rounds, entries[CONTROL_INDEX][0] if control else None, roof)
    if yardstick:
        plain = entries.pop()[0]
        summary["plain_nchw_eager_over_dense"] = {"ratio": plain.ratio(), "interval": list(plain.ratio_interval())}
    return [r.to_row() for r, _ in entries], summary


def format_table(rows: list[dict[str, Any]], batch_sizes: tuple[int, int] = DEFAULT_BATCH_SIZES) -> str:
    """A plain-text table per point: accuracy and its difference to dense (pp, 95% interval,
    McNemar p), time over the dense model's with its 95% interval (below 1 is faster), the
    per-example medians, MACs and the achieved share of the roofline."""
    results = [Result.from_row(r) for r in rows]
    dense = dense_of(results) or results[0]
    big, small = batch_sizes

    def us(r: Result, b: int) -> float:  # a row timed alone (the JAX sweep's) has only its own median
        return r.ratio(b) * dense.latency_us[b] if b in r.latency_ratio else r.latency_us[b]
    head = (f"{'mode':<14}{'f':>5}{'acc %':>7}  {'d acc pp [95%] McNemar':<32}{f'x dense b{big} [95%]':<24}"
            f"{f'us b{big}*':>9}  {f'x dense b{small} [95%]':<22}{f'us b{small}*':>7}{'MACs M':>8}"
            f"{f'roof b{big}':>12}")
    lines = [head, "-" * len(head)]
    for r in results:
        f = "" if r.settings.get("rank_fraction") is None else f"{r.settings['rank_fraction']:.1f}"
        roof = r.get(f"roofline_fraction_b{big}")
        lines.append(f"{r.settings.get('mode', r.family):<14}{f:>5}{100 * r.test_acc:>7.2f}  {diff_text(r):<32}"
                     f"{ratio_text(r, big):<24}{us(r, big):>9.1f}  {ratio_text(r, small):<22}{us(r, small):>7.0f}"
                     f"{r.total_macs / 1e6:>8.2f}{'' if roof is None else f'{100 * roof:.1f}%':>12}")
    return "\n".join(lines + ["* us per example: dense's median times the row's ratio (only ratios are side by side)"])


