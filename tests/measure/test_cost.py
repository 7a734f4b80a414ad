"""MACs per example, counted by hooks: per output vector, per call, for any model and input."""

from __future__ import annotations

import torch
from torch import nn

from tests.test_factorize import Twice
from torch_impl import LowRankConfig, factorize_
from torch_impl.measure.cost import count_macs


def test_linear_macs_count_every_output_vector_and_every_call() -> None:
    tokens = nn.Sequential(nn.Linear(8, 4))
    assert count_macs(tokens, example=torch.randn(2, 5, 8)) == {"0": 5 * 8 * 4}  # 5 tokens of one example
    shared = Twice()
    assert count_macs(shared, example=torch.randn(3, 128)) == {"block": 2 * 128 * 128, "head": 128 * 10}
    factorize_(shared, LowRankConfig(ranks={"block": 16}))
    assert count_macs(shared, example=torch.randn(1, 128))["block"] == 2 * 16 * (128 + 128)
