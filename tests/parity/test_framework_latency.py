"""The fair torch-vs-JAX timing runs both frameworks both ways on the same weights."""

from __future__ import annotations

import numpy as np
import pytest

from jax_ref import lowrank as jax_lowrank
from torch_impl.factorize import compress_model
from torch_impl.parity.framework_latency import fair_latency
from torch_impl.parity.haiku_convert import torch_to_haiku


def test_both_frameworks_must_time_the_same_points(net_svds) -> None:
    """The run itself: tests/commands/test_parity_report.py (the parity report times every point
    both ways on the real images)."""
    net, svds = net_svds
    params = torch_to_haiku(net)
    images = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    torch_models = {"factorized f=0.1": compress_model(net, rank_fraction=0.1, svds=svds)[0]}
    with pytest.raises(ValueError, match="the same points in both frameworks"):
        fair_latency(torch_models, {"dense": jax_lowrank.point_model(params, "dense", None)[1:]}, images, 12)
