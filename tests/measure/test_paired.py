"""Any model timed against its original, with the A/A control among the rows."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from torch_impl import LowRankConfig, factorize_
from torch_impl.measure.latency import TimingProtocol
from torch_impl.measure.paired import CONTROL, ORIGINAL, time_against_original

TWO_ROUNDS = TimingProtocol(min_rounds=2, max_rounds=2)


def test_a_candidate_is_timed_against_its_original_with_a_control() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    small = copy.deepcopy(model)
    factorize_(small, LowRankConfig(rank_fraction=0.1))
    out = time_against_original(model, {"low-rank": small}, torch.randn(64, 256), protocol=TWO_ROUNDS)
    assert set(out["rows"]) == {ORIGINAL, CONTROL, "low-rank"} and out["rounds"]["rounds"] == 2
    assert out["rows"][ORIGINAL][64]["ratio"] == 1.0
    for name, row in out["rows"].items():
        for b in (64, 1):
            assert row[b]["ratio"] > 0 and row[b]["us_per_example"] > 0
            if name != ORIGINAL:  # two rounds are too few for an interval
                assert np.isnan(row[b]["lo"]) and np.isnan(row[b]["hi"])
    with pytest.raises(ValueError, match="are the reference's"):
        time_against_original(model, {ORIGINAL: small}, torch.randn(4, 256), protocol=TWO_ROUNDS)
