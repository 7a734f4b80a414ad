"""Any model timed against the one it was made from: paired rounds, intervals, an A/A control.

The same protocol as the sweep and the comparison (``latency.time_interleaved``): every
candidate is timed right beside the original in shuffled rounds; a copy of the original timed
as another model is the A/A control, whose interval should contain 1.0 (``aa_check`` says
loudly when it does not). Inputs are the caller's own; the first dimension is the batch.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from torch_impl.measure.latency import DEFAULT_TIMING, TimingProtocol, aa_check, time_interleaved, torch_calls

ORIGINAL, CONTROL = "original", "original, timed as another model (A/A control)"


def time_against_original(original: nn.Module, candidates: dict[str, nn.Module], inputs: torch.Tensor,
                          batch_sizes: list[int] | None = None, protocol: TimingProtocol = DEFAULT_TIMING,
                          progress: bool = False) -> dict[str, Any]:
    """``{"rows": {name: {batch size: {ratio, lo, hi, us_per_example}}}, "aa_warning", "rounds"}``:
    each candidate's time over ``original``'s with its 95% interval, the A/A control among the rows.
    ``batch_sizes``: default the whole of ``inputs`` and 1."""
    if ORIGINAL in candidates or CONTROL in candidates:
        raise ValueError(f"candidate names {ORIGINAL!r} and {CONTROL!r} are the reference's")
    batch_sizes = batch_sizes or [len(inputs), 1]
    models = {ORIGINAL: original, CONTROL: copy.deepcopy(original), **candidates}
    calls = {name: torch_calls(m, inputs, batch_sizes) for name, m in models.items()}
    rounds = time_interleaved(calls, ORIGINAL, protocol, progress=progress)
    rows = {name: {b: {"ratio": st.ratio, "lo": st.ratio_lo, "hi": st.ratio_hi, "us_per_example": st.per_example_us}
                   for b, st in rounds.stats[name].items()} for name in models}
    return {"rows": rows, "aa_warning": aa_check(rounds.stats[CONTROL]), "rounds": rounds.summary()}
