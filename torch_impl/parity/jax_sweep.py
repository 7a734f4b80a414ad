"""The JAX reference's rank sweep of the same weights, run with the arithmetic torch uses.

The scripts reach ``jax_ref`` only through here (the package's layers: only ``parity/``
imports it). JAX's default matmul precision on a GPU may use TF32 or bf16 passes; the
comparison sets it to "highest", as torch runs full fp32 (``cli.process.full_fp32``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np


def jax_full_fp32() -> str:
    """Highest matmul precision in JAX from here on; returns how its calls are timed, for the files."""
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")
    return f"jax.jit on {jax.default_backend()}, whole batch per call, block_until_ready, matmul precision highest"


def jax_sweep(params: dict, images: np.ndarray, labels: np.ndarray, fractions: Iterable[float],
              modes: Iterable[str] = ("factorized", "reconstructed"), batch_sizes: Iterable[int] = (10_000, 1),
              progress: bool = True) -> list[dict[str, Any]]:
    """``jax_ref.lowrank.run_sweep``: rows in the torch sweep's schema (``framework='jax'``)."""
    from jax_ref import lowrank

    return lowrank.run_sweep(params, images, labels, fractions, modes, batch_sizes, progress=progress)


def jax_point(params: dict, fraction: float | None) -> tuple[Callable, dict]:
    """(apply function, parameters) of the dense network (``fraction`` None) or its factorized copy."""
    from jax_ref import lowrank

    return lowrank.point_model(params, "dense" if fraction is None else "factorized", fraction)[1:]
