"""The take-home's Parts 2 and 3 in JAX: truncated SVD of each linear weight, and a sweep.

Part 2 ("reconstructed"): each ``w [in, out]`` is replaced by ``u @ v`` in the dense net.
Part 3 ("factorized"): the low-rank net applies ``x @ u`` then ``@ v``.
A rank fraction f keeps ``max(1, floor(f * min(in, out)))`` singular values.
Dense parameters may come under either naming (``jax_ref.model.canonical``); which network
they belong to (the pooling) is read from their shapes.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jax_ref.model import (
    FC_NAMES,
    HIDDEN_WIDTHS,
    canonical,
    dense_net,
    low_rank_net,
    mlp_in,
    mlp_out,
    native,
    pooling_of,
    take_home_names,
    widths_of,
)

_FLOOR_SLACK = 1e-9  # as in the torch rule: 0.7 * 10 must keep 7 values, not 6
# per example, both convs; the same for both networks (haiku: conv2 is 32 x 16 x 48 outputs of 5*5*9)
CONV_MACS = 32 * 32 * 18 * (5 * 5 * 3) + 16 * 16 * 48 * (5 * 5 * 18)


def rank_for(rank_fraction: float, n_in: int, n_out: int) -> int:
    if not 0.0 < rank_fraction <= 1.0:
        raise ValueError(f"rank_fraction must be in (0, 1], got {rank_fraction}")
    return max(1, math.floor(rank_fraction * min(n_in, n_out) + _FLOOR_SLACK))


def ranks_for(rank_fraction: float, pooling: str = "spatial", widths: Sequence[int] = HIDDEN_WIDTHS) -> list[int]:
    return [rank_for(rank_fraction, i, o) for i, o in zip(mlp_in(pooling, widths), mlp_out(widths))]


def rank_approximated_weight(weight: jnp.ndarray, rank: int, svd: tuple | None = None
                             ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Truncated SVD ``weight [in, out] ~= u @ v`` with ``u [in, r]``, ``v [r, out]`` (s folded into v).

    ``svd`` may pass ``jnp.linalg.svd(weight, full_matrices=False)`` computed earlier.
    """
    if not 1 <= rank <= min(weight.shape):
        raise ValueError(f"rank must be in [1, {min(weight.shape)}] for a {weight.shape} weight, got {rank}")
    u, s, vh = svd if svd is not None else jnp.linalg.svd(weight, full_matrices=False)
    return u[:, :rank].astype(weight.dtype), (s[:rank, None] * vh[:rank]).astype(weight.dtype)


def layer_svds(params: hk.Params) -> dict[str, tuple]:
    """The SVD of each linear weight, computed once for a whole sweep.

    Computed on the host CPU and returned as numpy arrays (which jit calls then move to the
    default device): a GPU's SVD of a 3000 x 3072 matrix is slower than the host's.
    """
    cpu = jax.devices("cpu")[0]
    params = canonical(params)
    return {name: tuple(np.asarray(x) for x in jnp.linalg.svd(jax.device_put(params[name]["w"], cpu),
                                                               full_matrices=False))
            for name in FC_NAMES}


def factorized_params(params: hk.Params, ranks: Sequence[int | None], svds: dict | None = None) -> hk.Params:
    """Parameters for ``low_rank_net(ranks, pooling)`` from dense ones."""
    params = canonical(params)
    out = {k: v for k, v in params.items() if not k.startswith("fc")}
    for name, rank in zip(FC_NAMES, ranks):
        if rank is None:
            out[name] = params[name]
            continue
        u, v = rank_approximated_weight(params[name]["w"], rank, (svds or {}).get(name))
        out[f"{name}_u"] = {"w": u}
        out[f"{name}_v"] = {"w": v, "b": params[name]["b"]}
    return out


def reconstructed_params(params: hk.Params, ranks: Sequence[int | None], svds: dict | None = None) -> hk.Params:
    """Dense parameters (named as given) whose linear weights are replaced by their rank-r products."""
    given, params = params, canonical(params)
    out = dict(params)
    for name, rank in zip(FC_NAMES, ranks):
        if rank is not None:
            u, v = rank_approximated_weight(params[name]["w"], rank, (svds or {}).get(name))
            out[name] = {"w": u @ v, "b": params[name]["b"]}
    return out if set(given) == set(out) else take_home_names(out)


def compute_eval_metrics(apply_fn: Callable, params: hk.Params, images: np.ndarray, labels: np.ndarray,
                         n_samples: int, warmup: int = 2) -> tuple[float, list[float]]:
    """The take-home's metric: accuracy on the batch, and the seconds per call for ``n_samples``
    calls after ``warmup`` (compilation included there), each ended by ``block_until_ready``."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    predict = jax.jit(lambda p, x: jnp.argmax(apply_fn(p, x), axis=-1))
    # Both on the device before timing: numpy parameters would be copied in on every call
    # (157 MB for the full-rank factorized net), which is not inference time.
    params, images = jax.device_put(params), jax.device_put(images)
    preds = None
    for _ in range(warmup):
        preds = predict(params, images).block_until_ready()
    durations = []
    for _ in range(n_samples):
        start = time.perf_counter()
        preds = predict(params, images).block_until_ready()
        durations.append(time.perf_counter() - start)
    return float(np.mean(np.asarray(preds) == labels)), durations


def _repeats(batch_size: int) -> tuple[int, int]:
    # (warm-up, timed calls). The warm-up call also compiles. XLA:CPU takes ~10 s for
    # 10,000 images here, so big batches get few calls; batch 1 gets many.
    return (1, 3) if batch_size >= 1000 else (5, 30) if batch_size >= 32 else (20, 200)


def sweep_point(apply_fn: Callable, params: hk.Params, images: np.ndarray, labels: np.ndarray,
                batch_sizes: Iterable[int]) -> dict[str, Any]:
    row: dict[str, Any] = {"params": int(sum(np.size(p) for p in jax.tree_util.tree_leaves(params)))}
    for bs in batch_sizes:
        warmup, n = _repeats(bs)
        acc, durations = compute_eval_metrics(apply_fn, params, images[:bs], labels[:bs], n, warmup)
        per_ex = [d / bs * 1e6 for d in durations]
        q = statistics.quantiles(per_ex, n=4)
        row[f"latency_us_b{bs}"], row[f"latency_iqr_us_b{bs}"] = statistics.median(per_ex), q[2] - q[0]
        if bs == len(labels):
            row["test_acc"] = acc
    return row


def point_model(params: hk.Params, mode: str, fraction: float | None, svds: dict | None = None
                ) -> tuple[list[int | None], Callable, hk.Params]:
    """(ranks, apply function, parameters) of one sweep point: "dense", or a mode at a fraction."""
    pooling, widths = pooling_of(params), widths_of(params)
    params = native(params, pooling)
    if mode == "dense":
        return [None] * len(FC_NAMES), dense_net(pooling, widths).apply, params
    if mode not in ("factorized", "reconstructed"):
        raise ValueError(f"mode must be factorized or reconstructed, got {mode!r}")
    ranks = ranks_for(fraction, pooling, widths)
    if mode == "factorized":
        return ranks, low_rank_net(ranks, pooling, widths).apply, factorized_params(params, ranks, svds)
    return ranks, dense_net(pooling, widths).apply, reconstructed_params(params, ranks, svds)


def run_sweep(params: hk.Params, images: np.ndarray, labels: np.ndarray,
              fractions: Iterable[float], modes: Iterable[str] = ("factorized", "reconstructed"),
              batch_sizes: Iterable[int] = (10_000, 1), progress: bool = True) -> list[dict[str, Any]]:
    """Rows in the torch sweep's schema (``framework='jax'``): dense, then (mode, fraction) points."""
    batch_sizes = list(batch_sizes)
    if len(labels) not in batch_sizes:  # accuracy is always taken on the whole set
        batch_sizes = [len(labels), *batch_sizes]
    points = [("dense", None)] + [(m, f) for m in modes for f in fractions]
    svds = layer_svds(params)
    pooling = pooling_of(params)
    shapes, outs = mlp_in(pooling, widths_of(params)), mlp_out(widths_of(params))
    rows = []
    for mode, fraction in tqdm(points, desc="jax rank sweep", unit="point", disable=not progress):
        ranks, fn, p = point_model(params, mode, fraction, svds)
        mlp_macs = sum(i * o if r is None or mode == "reconstructed" else r * (i + o)
                       for r, i, o in zip(ranks, shapes, outs))
        rows.append({"framework": "jax", "pooling": pooling, "mode": mode, "rank_fraction": fraction, "ranks": ranks,
                     "mlp_macs": mlp_macs, "total_macs": CONV_MACS + mlp_macs,
                     **sweep_point(fn, p, images, labels, batch_sizes)})
    return rows
