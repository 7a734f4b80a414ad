"""Torch against the JAX reference on the same weights, timed fairly.

The torch harness runs a big batch in chunks (``torch_impl.inference``: the trunk 256 images
at a time, the MLP 1,024 rows at a time) while ``jax_ref`` runs the whole batch in one jitted
call, so the curves' latencies compare two ways of running as much as two frameworks. Here
each point runs in both frameworks both ways, the whole batch in one call and the same
chunks of ``FAIR_CHUNK`` images through the whole network, plus torch's harness way, all in
one set of interleaved rounds (``torch_impl.measure.latency``), and each torch/JAX ratio gets a
bootstrap interval over the rounds.

Shapes: images ``[B, 32, 32, 3]`` uint8 in both frameworks; logits ``[B, 10]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import torch
from torch import nn

from torch_impl.measure.latency import (
    DEFAULT_TIMING,
    PROTOCOL,
    Call,
    TimingProtocol,
    sync,
    time_interleaved,
    torch_calls,
)
from torch_impl.measure.stats import fmt_interval

FAIR_CHUNK = 256
WAYS = {"whole": "whole batch in one call", "chunked": f"chunks of {FAIR_CHUNK} images through the whole network"}
HARNESS = "torch harness (trunk in chunks of 256 images, MLP in chunks of 1,024 rows)"


def _parts(n: int, chunk: int | None) -> list[slice]:
    return [slice(0, n)] if chunk is None else [slice(i, i + chunk) for i in range(0, n, chunk)]


def torch_call(model: nn.Module, images: torch.Tensor, chunk: int | None) -> Call:
    """The model on every part of the batch (one part: the whole batch), as one call."""
    device = next(model.parameters()).device
    model.eval()
    images = images.to(device)
    parts = _parts(len(images), chunk)

    def call() -> None:
        with torch.inference_mode():
            torch.cat([model(images[s]) for s in parts])
        sync(device)
    return call


def jax_call(apply_fn: Callable, params: Any, images: np.ndarray, chunk: int | None) -> Call:
    """The jitted network on every part of the batch, ended by ``block_until_ready``."""
    logits = jax.jit(apply_fn)  # hk.without_apply_rng: apply(params, images)
    params = jax.device_put(params)
    parts = [jax.device_put(images[s]) for s in _parts(len(images), chunk)]  # not timed: inputs arrive on device

    def call() -> None:
        jax.block_until_ready([logits(params, x) for x in parts])
    return call


def fair_latency(torch_models: dict[str, nn.Module], jax_models: dict[str, tuple[Callable, Any]],
                 images: np.ndarray, batch_size: int, progress: bool = True, protocol: TimingProtocol = DEFAULT_TIMING
                 ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per point (the keys of both dicts) and way, torch's and JAX's per-example medians and
    torch's time over JAX's with its 95% interval; and the timing summary."""
    if set(torch_models) != set(jax_models):
        raise ValueError(f"the same points in both frameworks, got {sorted(torch_models)} and {sorted(jax_models)}")
    batch = images[:batch_size]
    tb = torch.from_numpy(batch)
    calls: dict[str, dict[int, Call]] = {}
    for point, model in torch_models.items():
        calls[f"{point}|torch|harness"] = torch_calls(model, tb, [batch_size])
        for way, chunk in (("whole", None), ("chunked", FAIR_CHUNK)):
            calls[f"{point}|torch|{way}"] = {batch_size: torch_call(model, tb, chunk)}
            calls[f"{point}|jax|{way}"] = {batch_size: jax_call(*jax_models[point], batch, chunk)}
    reference = next(iter(calls))
    rounds = time_interleaved(calls, reference, progress=progress, protocol=protocol)
    us = lambda name: rounds.stats[name][batch_size].per_example_us
    rows = []
    for point in torch_models:
        for way in WAYS:
            t, j = f"{point}|torch|{way}", f"{point}|jax|{way}"
            r, lo, hi = rounds.ratio(t, j, batch_size)
            rows.append({"point": point, "way": WAYS[way], "batch_size": batch_size, "torch_us": us(t),
                         "jax_us": us(j), "torch_over_jax": r, "torch_over_jax_lo": lo, "torch_over_jax_hi": hi})
        rows.append({"point": point, "way": HARNESS, "batch_size": batch_size,
                     "torch_us": us(f"{point}|torch|harness")})
    summary = rounds.summary()
    summary["method"] = (f"{PROTOCOL}; torch calls: eager under inference_mode, or the harness ({HARNESS}); "
                         "JAX calls: jax.jit of the Haiku network per part, ended by block_until_ready")
    return rows, summary


def ratio_table(torch_rows: list[dict], jax_rows: list[dict], batch_sizes: list[int]) -> tuple[str, list[dict]]:
    """The two sweeps side by side, each run its own way (torch: harness chunks; JAX: whole batch)."""
    head = f"{'mode':<14}{'f':>5}{'acc torch':>10}{'acc jax':>9}" + "".join(
        f"{f'torch b{b}':>11}{f'jax b{b}':>10}{'t/j':>6}" for b in batch_sizes)
    lines, merged = [head, "-" * len(head)], []
    for t, j in zip(torch_rows, jax_rows):
        assert (t["mode"], t["rank_fraction"]) == (j["mode"], j["rank_fraction"])
        row = {"mode": t["mode"], "rank_fraction": t["rank_fraction"], "acc_torch": t["test_acc"],
               "acc_jax": j["test_acc"]}
        f = "" if t["rank_fraction"] is None else f"{t['rank_fraction']:.1f}"
        line = f"{t['mode']:<14}{f:>5}{100 * t['test_acc']:>10.2f}{100 * j['test_acc']:>9.2f}"
        for b in batch_sizes:
            key = f"latency_us_b{b}"
            row[f"torch_{key}"], row[f"jax_{key}"] = t[key], j[key]
            row[f"ratio_b{b}"] = t[key] / j[key]
            line += f"{t[key]:>11.1f}{j[key]:>10.1f}{t[key] / j[key]:>6.2f}"
        lines.append(line)
        merged.append(row)
    return "\n".join(lines), merged


def fair_table(fair: list[dict]) -> str:
    """``fair_latency``'s rows as text."""
    lines = [f"{'point':<18}{'way':<82}{'torch us':>9}{'jax us':>8}  torch/jax [95%]"]
    for r in fair:
        ratio = (fmt_interval(r["torch_over_jax"], r["torch_over_jax_lo"], r["torch_over_jax_hi"], ".2f")
                 if "torch_over_jax" in r else "")
        jax_us = f"{r['jax_us']:.1f}" if "jax_us" in r else ""
        lines.append(f"{r['point']:<18}{r['way']:<82}{r['torch_us']:>9.1f}{jax_us:>8}  {ratio}")
    return "\n".join(lines)
