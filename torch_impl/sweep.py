"""Rank sweep of a trained network: accuracy, latency, parameters and MACs per rank fraction."""

from __future__ import annotations

import copy
import csv
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from torch_impl.cost import count_macs, total_and_mlp_macs
from torch_impl.files import atomic_path, write_json
from torch_impl.inference import PlainEager, predict
from torch_impl.latency import DEFAULT_BATCH_SIZES, Rounds, aa_check, time_interleaved, torch_calls
from torch_impl.lowrank import MODES, compress_model, model_svds, rank_from_fraction
from torch_impl.results import CONTROL_FAMILY, Result, stored_bytes, stored_params, sweep_method
from torch_impl.roofline import Roofline, measure_roofline, roofline_fraction, weight_bytes_read
from torch_impl.round_journal import RoundJournal
from torch_impl.stats import accuracy_diff

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


def evaluate_into(result: Result, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  dense_correct: np.ndarray | None = None, macs: dict[str, int] | None = None,
                  split: str = "test") -> np.ndarray:
    """Fill ``result`` with ``model``'s accuracy on ``split`` (with ``dense_correct``, the
    dense model's per-image correctness there: the paired difference, its interval and
    McNemar's p), and, on the test split, its cost and size; returns per-image correctness.
    ``macs``: counted beforehand, for models whose layers hide from ``count_macs``'s hooks (int8)."""
    with torch.inference_mode():
        correct = (predict(model, images).argmax(1) == labels).cpu().numpy()
    setattr(result, f"{split}_acc", float(correct.mean()))
    if dense_correct is not None:
        result.measured.update(accuracy_diff(correct, dense_correct).as_dict(split))
    if split == "test":
        result.total_macs, result.mlp_macs = total_and_mlp_macs(macs if macs is not None else count_macs(model))
        result.params, result.bytes = stored_params(model), stored_bytes(model)
        result.measured["weight_bytes_read"] = weight_bytes_read(model)
    return correct


def time_into(entries: list[tuple[Result, nn.Module]], images: torch.Tensor, batch_sizes: list[int],
              roof: Roofline | None = None, chunks: dict[int, int | None | str] | None = None,
              progress: bool = True, journal: str | Path | None = None, race: bool = True,
              **protocol: Any) -> Rounds:
    """Time every model in interleaved rounds against the first (the dense model) and fill each
    result's latencies, ratios with intervals and, with ``roof``, roofline fractions.
    ``chunks``: ``predict``'s chunk per entry index (default "auto"); ``journal``: a file that
    keeps finished rounds for a rerun of the same models (``round_journal``); ``protocol``:
    passed to ``latency.time_interleaved`` (target, time cap, rounds). With ``race``, a model
    stops being timed once its interval is within the target, or once a model at least as
    accurate on validation (rows that have ``val_acc``) is clearly faster; each row records why
    (``timing_stopped``)."""
    chunks = chunks or {}
    calls = {str(i): torch_calls(m, images, batch_sizes, chunks.get(i, "auto")) for i, (_, m) in enumerate(entries)}
    kept = None
    if journal is not None:  # models named by their rows, so another set of rows starts the file anew
        kept = RoundJournal(journal, [f"{i}: {r.method}" for i, (r, _) in enumerate(entries)], batch_sizes)
    accuracy = {str(i): r.val_acc for i, (r, _) in enumerate(entries)
                if r.family != CONTROL_FAMILY and r.val_acc is not None and not math.isnan(r.val_acc)}
    rounds = time_interleaved(calls, reference="0", progress=progress, journal=kept, race=race, accuracy=accuracy,
                              labels={str(i): r.method for i, (r, _) in enumerate(entries)}, **protocol)
    for i, (result, _) in enumerate(entries):
        if str(i) in rounds.retired:
            result.measured["timing_stopped"] = rounds.retired[str(i)]
        for b, st in rounds.stats[str(i)].items():
            result.latency_us[b], result.latency_iqr_us[b] = st.per_example_us, st.iqr_us
            result.latency_ratio[b], result.latency_ratio_lo[b], result.latency_ratio_hi[b] = (
                st.ratio, st.ratio_lo, st.ratio_hi)
            if roof is not None and result.total_macs:
                result.measured[f"roofline_fraction_b{b}"] = roofline_fraction(
                    roof, result.total_macs, result.measured["weight_bytes_read"], b, st.per_example_us)
        result.measured.update(threads=rounds.threads, latency_method=rounds.method, latency_rounds=rounds.rounds)
    return rounds


def control_result(dense: Result) -> Result:
    """The A/A control's row: the dense model's accuracy and cost, timed as another model."""
    return Result(f"{dense.method} (A/A control)", CONTROL_FAMILY, dense.test_acc, val_acc=dense.val_acc,
                  total_macs=dense.total_macs, mlp_macs=dense.mlp_macs, params=dense.params, bytes=dense.bytes,
                  settings={**dense.settings, "mode": "control"},
                  measured={k: v for k, v in dense.measured.items() if k == "weight_bytes_read"})


def timing_summary(rounds: Rounds, control: Result | None, roof: Roofline | None) -> dict[str, Any]:
    """What the run's timing needs to be trusted: the protocol's stop, the A/A control, the roofline."""
    out: dict[str, Any] = {"rounds": rounds.summary(), "roofline": roof.as_dict() if roof else None,
                           # keyed by row index, for re-analysis: each call's seconds, and the
                           # reference's call beside it (latency.Rounds)
                           "seconds_per_call": rounds.times, "reference_beside": rounds.paired}
    if control is not None:
        b = max(control.latency_ratio)
        out["aa_control"] = {"ratio": control.ratio(b), "interval": list(control.ratio_interval(b)),
                             "batch_size": b, "warning": aa_check(rounds.stats[str(_CONTROL_INDEX)])}
    return out


_CONTROL_INDEX = 1  # run_sweep and the comparison put the control right after the dense model


def run_sweep(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
              fractions: Iterable[float] = DEFAULT_FRACTIONS, modes: Iterable[str] = MODES,
              batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES, progress: bool = True, control: bool = True,
              yardstick: bool = False, roofline: bool = True, device: str | torch.device | None = None,
              **protocol: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The dense baseline, its A/A control (``control``), then one row per (mode, fraction),
    each evaluated on the test set and all timed together in interleaved rounds
    (``torch_impl.latency``); returns the rows and the timing summary (``timing_summary``;
    with ``yardstick``, also ``PlainEager``'s time over the harness's for the dense model).
    ``device`` (default: the model's) is where every point is evaluated and timed; the
    caller's model stays where it is."""
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
    rounds = time_into(entries, images, batch_sizes, roof, chunks, progress, **protocol)
    summary = timing_summary(rounds, entries[_CONTROL_INDEX][0] if control else None, roof)
    if yardstick:
        plain = entries.pop()[0]
        summary["plain_nchw_eager_over_dense"] = {"ratio": plain.ratio(), "interval": list(plain.ratio_interval())}
    return [r.to_row() for r, _ in entries], summary


CSV_FIELDS = ("method", "family", "framework", "pooling", "mode", "rank_fraction", "test_acc", "test_diff",
              "test_diff_lo", "test_diff_hi", "test_mcnemar_p", "latency_ratio_b10000", "latency_ratio_lo_b10000",
              "latency_ratio_hi_b10000", "latency_us_b10000", "latency_iqr_us_b10000", "latency_ratio_b1",
              "latency_ratio_lo_b1", "latency_ratio_hi_b1", "latency_us_b1", "latency_iqr_us_b1",
              "roofline_fraction_b10000", "roofline_fraction_b1", "params", "bytes", "mlp_macs", "total_macs", "ranks")


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
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({**r, "ranks": _ranks_text(r.get("ranks"))})
    write_json(json_path, {**meta, "rows": rows})
    return csv_path, json_path


def ratio_text(r: Result, b: int) -> str:
    """``0.512 [0.498, 0.526]``: time over dense with its 95% interval ("n/a" for rows timed
    alone, as the JAX sweep's are: a ratio of two times taken minutes apart is not one)."""
    if b not in r.latency_ratio:
        return "n/a (timed alone)"
    lo, hi = r.ratio_interval(b)
    return f"{r.ratio(b):.3f} [{lo:.3f}, {hi:.3f}]"


def diff_text(r: Result, split: str = "test") -> str:
    """``-0.41 [-0.62, -0.20] p=0.0003``: accuracy minus dense's, in pp, with interval and McNemar p."""
    d = r.get(f"{split}_diff")
    if d is None:
        return "(reference)" if r.family in ("dense", CONTROL_FAMILY) else "n/a"
    lo, hi, p = r.get(f"{split}_diff_lo"), r.get(f"{split}_diff_hi"), r.get(f"{split}_mcnemar_p")
    # below 1e-4 the exact value says nothing more, and "p=2.8e-98" would overrun the column
    return f"{100 * d:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}] " + ("p<1e-4" if p < 1e-4 else f"p={p:.2g}")


def format_table(rows: list[dict[str, Any]], batch_sizes: tuple[int, int] = DEFAULT_BATCH_SIZES) -> str:
    """A plain-text table per point: accuracy and its difference to dense (pp, 95% interval,
    McNemar p), time over the dense model's with its 95% interval (below 1 is faster), the
    per-example medians, MACs and the achieved share of the roofline."""
    results = [Result.from_row(r) for r in rows]
    big, small = batch_sizes
    head = (f"{'mode':<14}{'f':>5}{'acc %':>7}  {'d acc pp [95%] McNemar':<32}{f'x dense b{big} [95%]':<24}"
            f"{f'us b{big}':>9}  {f'x dense b{small} [95%]':<22}{f'us b{small}':>7}{'MACs M':>8}"
            f"{f'roof b{big}':>12}")
    lines = [head, "-" * len(head)]
    for r in results:
        f = "" if r.settings.get("rank_fraction") is None else f"{r.settings['rank_fraction']:.1f}"
        roof = r.get(f"roofline_fraction_b{big}")
        lines.append(f"{r.settings.get('mode', r.family):<14}{f:>5}{100 * r.test_acc:>7.2f}  {diff_text(r):<32}"
                     f"{ratio_text(r, big):<24}{r.latency_us[big]:>9.1f}  {ratio_text(r, small):<22}"
                     f"{r.latency_us[small]:>7.0f}{r.total_macs / 1e6:>8.2f}"
                     f"{'' if roof is None else f'{100 * roof:.1f}%':>12}")
    return "\n".join(lines)


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
        lo, hi = aa["interval"]
        lines.append(aa["warning"] or f"A/A control (a copy of dense timed as another model): {aa['ratio']:.3f}x "
                                      f"[{lo:.3f}, {hi:.3f}] at batch {aa['batch_size']}: contains 1.0, as it should")
    if roof := timing.get("roofline"):
        lines.append(f"roofline ({roof['device']}): fp32 GEMM {roof['gemm_flops_per_s'] / 1e9:.0f} GFLOP/s, "
                     f"read {roof['read_bytes_per_s'] / 1e9:.1f} GB/s (copy {roof['copy_bytes_per_s'] / 1e9:.1f})")
    if y := timing.get("plain_nchw_eager_over_dense"):
        lines.append(f"yardstick: the plain NCHW eager dense model takes {y['ratio']:.2f}x the harness's time "
                     f"[{y['interval'][0]:.2f}, {y['interval'][1]:.2f}]; it puts other days' latencies on one scale")
    return "\n".join(lines)
