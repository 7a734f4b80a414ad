"""The fair torch-vs-JAX timing runs both frameworks both ways on the same weights."""

from __future__ import annotations

import numpy as np
import pytest

from jax_ref import lowrank as jax_lowrank
from torch_impl.factorize import compress_model
from torch_impl.measure.latency import TimingProtocol
from torch_impl.parity.framework_latency import HARNESS, WAYS, fair_latency, fair_table
from torch_impl.parity.haiku_convert import torch_to_haiku


@pytest.mark.slow
def test_both_frameworks_both_ways(net_svds) -> None:
    net, svds = net_svds
    params = torch_to_haiku(net)
    images = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    torch_models = {"factorized f=0.1": compress_model(net, rank_fraction=0.1, svds=svds)[0]}  # one point: JAX compiles
    jax_models = {"factorized f=0.1": jax_lowrank.point_model(params, "factorized", 0.1)[1:]}
    rows, timing = fair_latency(torch_models, jax_models, images, batch_size=12, progress=False,
                                protocol=TimingProtocol(min_rounds=3, max_rounds=3))
    assert [(r["point"], r["way"]) for r in rows] == [(p, w) for p in torch_models for w in (*WAYS.values(), HARNESS)]
    for r in rows:
        assert r["torch_us"] > 0
        if r["way"] != HARNESS:
            assert r["jax_us"] > 0 and r["torch_over_jax_lo"] <= r["torch_over_jax"] <= r["torch_over_jax_hi"]
    assert timing["rounds"] == 3 and "chunks of 256 images" in fair_table(rows)
    with pytest.raises(ValueError, match="the same points in both frameworks"):
        fair_latency(torch_models, {"dense": jax_lowrank.point_model(params, "dense", None)[1:]}, images, 12)
