"""The harness that scores and times a set of models the same way, for the sweep and the comparison.

Every model is evaluated on the same images (its accuracy, the paired difference to the dense
model, cost and size), then all are timed together in interleaved rounds against the dense
model (``latency.time_interleaved``), the A/A control right after it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torch_impl.inference import predict
from torch_impl.measure.cost import count_macs, total_and_mlp_macs
from torch_impl.measure.latency import DEFAULT_TIMING, Rounds, TimingProtocol, aa_check, time_interleaved, torch_calls
from torch_impl.measure.results import CONTROL_FAMILY, Result
from torch_impl.measure.roofline import Roofline, roofline_fraction, weight_bytes_read
from torch_impl.measure.round_journal import RoundJournal
from torch_impl.measure.size import stored_bytes, stored_params
from torch_impl.measure.stats import accuracy_diff


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
              protocol: TimingProtocol = DEFAULT_TIMING) -> Rounds:
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
                              labels={str(i): r.method for i, (r, _) in enumerate(entries)}, protocol=protocol)
    for i, (result, _) in enumerate(entries):
        if str(i) in rounds.retired:
            result.measured["timing_stopped"] = rounds.retired[str(i)]
        for b, st in rounds.stats[str(i)].items():
            result.latency_us[b], result.latency_iqr_us[b] = st.per_example_us, st.iqr_us
            result.latency_ratio[b], result.latency_ratio_lo[b], result.latency_ratio_hi[b] = (
                st.ratio, st.ratio_lo, st.ratio_hi)
            if not math.isnan(st.p90_us):  # small batches: the queries' 90th percentile beside the p50
                result.measured.update({f"latency_p90_us_b{b}": st.p90_us, f"latency_p90_ratio_b{b}": st.p90_ratio,
                                        f"latency_p90_ratio_lo_b{b}": st.p90_ratio_lo,
                                        f"latency_p90_ratio_hi_b{b}": st.p90_ratio_hi})
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
                             "batch_size": b, "warning": aa_check(rounds.stats[str(CONTROL_INDEX)])}
    return out


CONTROL_INDEX = 1  # run_sweep and the comparison put the control right after the dense model
