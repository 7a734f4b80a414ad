"""LowRankLinear, the rank rule, and whole-model compression."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from torch_impl.factorize import compress_model
from torch_impl.lowrank import LowRankLinear, break_even_rank, rank_from_fraction, set_mode
from torch_impl.measure.sweep import DEFAULT_FRACTIONS, parse_fractions
from torch_impl.model import CONV_LAYERS, LINEAR_LAYERS, MLP_SHAPES, SMALL_WIDTHS, build_model

# Measured on an Intel Xeon (largest difference; margin = how far it could grow before failing):
FULL_RANK_ATOL = 1e-5  # fp32 outputs of a float64 SVD cast back to fp32; 6.0e-7 (margin 17)
PATHS_ATOL = 1e-5  # factorized vs reconstructed: the same product, summed in another order; 7.2e-7 (14)
EY_RTOL = 1e-4  # Eckart-Young tail vs the fp32 weight error; 6.6e-8 (1,500)
CACHE_RTOL, CACHE_ATOL = 1e-5, 1e-6  # a cached product after its factor doubled; 6.0e-8 (118)


@pytest.fixture
def linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(48, 32)


def test_full_rank_reproduces_the_linear(linear: nn.Linear) -> None:
    low = LowRankLinear.from_linear(linear, rank=32)
    x = torch.randn(16, 48)
    torch.testing.assert_close(low(x), linear(x), rtol=0, atol=FULL_RANK_ATOL)
    assert low.A.shape == (32, 48) and low.B.shape == (32, 32)


@pytest.mark.parametrize("rank", [1, 5, 17, 31])
def test_weight_error_is_the_eckart_young_tail(linear: nn.Linear, rank: int) -> None:
    low = LowRankLinear.from_linear(linear, rank=rank)
    s = torch.linalg.svdvals(linear.weight.detach().double())
    tail = float(torch.sqrt((s[rank:] ** 2).sum()))
    err = float(torch.linalg.matrix_norm(low.reconstructed_weight().detach().double()
                                         - linear.weight.detach().double()))
    assert err == pytest.approx(tail, rel=EY_RTOL)


@pytest.mark.parametrize("rank", [1, 8, 32])
def test_factorized_and_reconstructed_paths_agree(linear: nn.Linear, rank: int) -> None:
    low = LowRankLinear.from_linear(linear, rank=rank)
    x = torch.randn(16, 48)
    y_fact = low(x)
    with torch.inference_mode():  # exercises the cached product too
        y_rec = set_mode(low, "reconstructed")(x)
        torch.testing.assert_close(y_rec, y_fact.detach(), rtol=0, atol=PATHS_ATOL)
        assert low.macs() == 48 * 32
    set_mode(low, "factorized")
    assert low.macs() == rank * (48 + 32)


@pytest.mark.parametrize("rank", [1, 8, 32])
def test_merge_and_unmerge_both_ways(linear: nn.Linear, rank: int) -> None:
    low = LowRankLinear.from_linear(linear, rank=rank)
    x = torch.randn(16, 48)
    merged = low.merge()
    assert type(merged) is nn.Linear and merged.weight.shape == linear.weight.shape
    torch.testing.assert_close(merged(x), low(x), rtol=0, atol=PATHS_ATOL)  # merge keeps the function
    again = LowRankLinear.unmerge(merged, rank)  # a rank-r weight splits into rank-r factors exactly
    assert again.rank == rank
    torch.testing.assert_close(again(x), low(x), rtol=0, atol=PATHS_ATOL)
    torch.testing.assert_close(again.merge().weight, merged.weight, rtol=0, atol=PATHS_ATOL)


def test_reconstructed_cache_follows_weight_updates(linear: nn.Linear) -> None:
    low = LowRankLinear.from_linear(linear, rank=4, mode="reconstructed")
    x = torch.randn(2, 48)
    with torch.no_grad():
        before = low(x)
        low.B.mul_(2.0)
        after = low(x)
    torch.testing.assert_close(after - low.bias, 2 * (before - low.bias), rtol=CACHE_RTOL, atol=CACHE_ATOL)


def test_reconstructed_path_is_differentiable(linear: nn.Linear) -> None:
    low = LowRankLinear.from_linear(linear, rank=4, mode="reconstructed")
    low(torch.randn(2, 48)).sum().backward()
    assert low.A.grad is not None and low.B.grad is not None


@pytest.mark.parametrize("fraction", DEFAULT_FRACTIONS)
def test_rank_rule_at_the_five_layers(fraction: float) -> None:
    for n_in, n_out in MLP_SHAPES:
        expected = max(1, math.floor(round(fraction * min(n_in, n_out), 6)))
        assert rank_from_fraction(fraction, n_in, n_out) == expected
    assert rank_from_fraction(0.1, 1000, 10) == 1  # the classifier keeps one singular value
    assert rank_from_fraction(0.7, 1000, 10) == 7  # 0.7 * 10 = 7.000000000000001 in floats
    assert rank_from_fraction(0.05, 1000, 10) == 1  # never zero


def test_arange_fractions_keep_the_intended_ranks() -> None:
    import numpy as np

    for f in np.arange(1.0, 0.0, -0.1):  # the take-home's loop: 0.30000000000000027 etc.
        assert rank_from_fraction(float(f), 3000, 2000) == round(f * 10) * 200


def test_break_even_rank() -> None:
    assert break_even_rank(2000, 2000) == 1000
    assert break_even_rank(3072, 3000) == pytest.approx(1517.8, abs=0.1)


def test_compress_model_copies_and_reports(net_svds) -> None:
    net, svds = net_svds
    original = {k: v.clone() for k, v in net.state_dict().items()}
    small, report = compress_model(net, rank_fraction=0.1, svds=svds)
    assert [r.rank for r in report] == [9, 6, 6, 3, 1]  # a tenth of 96, 64, 64, 32, 10
    assert all(isinstance(small.get_submodule(r.name), LowRankLinear) for r in report)
    for k, v in net.state_dict().items():
        assert torch.equal(v, original[k]), f"original model changed at {k}"
    fc1 = report[0]
    assert (fc1.params_before, fc1.macs_before) == (3072 * 96 + 96, 3072 * 96)
    assert (fc1.params_after, fc1.macs_after) == (9 * (3072 + 96) + 96, 9 * (3072 + 96))
    assert sum(p.numel() for p in small.parameters()) == sum(r.params_after for r in report) + 18 * 76 + 48 * 451


@pytest.mark.slow
def test_a_full_size_layer_at_a_tenth_of_its_rank(full_size_net) -> None:
    """Full size: fc4 (2000 -> 1000) at rank 100, the take-home's f=0.1, from its float64 SVD
    (fc1's, 3072 x 3000, takes 10 s here; the code is the same)."""
    net = full_size_net()
    small, report = compress_model(net, ranks={LINEAR_LAYERS[3]: 100})
    assert [r.rank for r in report] == [None, None, None, 100, None]
    fc4 = report[3]
    assert (fc4.params_before, fc4.macs_before) == (2000 * 1000 + 1000, 2000 * 1000)
    assert (fc4.params_after, fc4.macs_after) == (100 * 3000 + 1000, 100 * 3000)
    with torch.inference_mode():
        assert small(torch.zeros(2, 32, 32, 3, dtype=torch.uint8)).shape == (2, 10)


def test_full_rank_model_predicts_like_the_dense_model(net_svds) -> None:
    net, svds = net_svds
    images = torch.randint(0, 256, (64, 32, 32, 3), dtype=torch.uint8)
    with torch.no_grad():
        dense = net(images)
        for mode in ("factorized", "reconstructed"):
            full, _ = compress_model(net, rank_fraction=1.0, mode=mode, svds=svds)
            out = full(images)
            torch.testing.assert_close(out, dense, rtol=0, atol=FULL_RANK_ATOL)
            assert torch.equal(out.argmax(1), dense.argmax(1))


def test_per_layer_ranks_leave_other_layers_dense(net_svds) -> None:
    net, svds = net_svds
    small, report = compress_model(net, ranks={LINEAR_LAYERS[1]: 50}, svds=svds)
    assert isinstance(small.classifier[2], LowRankLinear) and small.classifier[2].rank == 50
    assert isinstance(small.classifier[0], nn.Linear)
    assert [r.rank for r in report] == [None, 50, None, None, None]


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5, float("nan"), "0.5"])
def test_bad_fraction(bad) -> None:
    with pytest.raises(ValueError, match=r"rank_fraction must be in \(0, 1\]"):
        rank_from_fraction(bad, 10, 10)
    with pytest.raises(ValueError, match=r"rank_fraction must be in \(0, 1\]"):
        compress_model(nn.Sequential(nn.Linear(4, 4)), rank_fraction=bad)


def test_svd_reuse_gives_the_same_factors(linear: nn.Linear) -> None:
    from torch_impl.lowrank import linear_svd

    a = LowRankLinear.from_linear(linear, rank=7)
    b = LowRankLinear.from_linear(linear, rank=7, svd=linear_svd(linear))
    assert torch.equal(a.A, b.A) and torch.equal(a.B, b.B)


def test_bad_ranks_and_layers(linear: nn.Linear) -> None:
    with pytest.raises(ValueError, match=r"rank must be in \[1, min\(in, out\)\] = \[1, 32\]"):
        LowRankLinear.from_linear(linear, rank=33)
    with pytest.raises(ValueError, match="rank must be in"):
        LowRankLinear.from_linear(linear, rank=0)
    with pytest.raises(ValueError, match="exactly one of"):
        LowRankLinear.from_linear(linear, rank=3, rank_fraction=0.5)
    with pytest.raises(ValueError, match="from_linear takes an nn.Linear, got Conv2d"):
        LowRankLinear.from_linear(nn.Conv2d(3, 8, 3), rank=2)
    net = build_model(0, widths=SMALL_WIDTHS)
    with pytest.raises(ValueError, match="layer 'features.0' is a Conv2d"):
        compress_model(net, ranks={CONV_LAYERS[0]: 4})
    with pytest.raises(ValueError, match="'fc9', which is not a layer"):
        compress_model(net, ranks={"fc9": 4})
    with pytest.raises(ValueError, match=r"layer 'classifier.8': rank must be in \[1, min\(in, out\)\] = \[1, 10\]"):
        compress_model(net, ranks={LINEAR_LAYERS[4]: 11})
    with pytest.raises(ValueError, match="mode must be one of"):
        set_mode(net, "fast")


def test_parse_fractions() -> None:
    assert parse_fractions("1.0, 0.5,0.1") == [1.0, 0.5, 0.1]
    with pytest.raises(ValueError, match="comma-separated"):
        parse_fractions("1.0;0.5")
    with pytest.raises(ValueError, match=r"rank_fraction must be in \(0, 1\]"):
        parse_fractions("1.2")
