"""Per-layer rank rules: energy on a known spectrum, the MAC budget, rounding, dense fallback."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torch_impl.factorize import compress_model
from torch_impl.lowrank import break_even_rank
from torch_impl.rank_select import (
    LayerSpectrum,
    budget_ranks,
    cheapest_budget,
    dense_if_no_saving,
    energy_ranks,
    layer_macs,
    ranks_macs,
    round_rank,
    spectra,
)

# Singular values of the test layer and the share of the squared spectrum each prefix holds:
# squares 64, 16, 9, 4, 4, 2, 1 (sum 100) -> cumulative 0.64, 0.80, 0.89, 0.93, 0.97, 0.99, 1.00
SPECTRUM = [8.0, 4.0, 3.0, 2.0, 2.0, 2 ** 0.5, 1.0]


def with_spectrum(n_in: int, n_out: int, s: list[float], seed: int = 0) -> nn.Linear:
    """An ``nn.Linear(n_in, n_out)`` whose weight has exactly the singular values ``s`` (rest zero)."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n_out, n_out, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n_in, n_in, generator=g, dtype=torch.float64))
    k = len(s)
    layer = nn.Linear(n_in, n_out)
    with torch.no_grad():
        layer.weight.copy_(u[:, :k] @ torch.diag(torch.tensor(s, dtype=torch.float64)) @ v[:, :k].T)
    return layer


def mlp() -> nn.Sequential:
    """Layers like the real MLP's extremes: wide hidden layers and a 10-output classifier."""
    return nn.Sequential(with_spectrum(64, 48, SPECTRUM), nn.ReLU(),
                         with_spectrum(48, 40, [float(40 - i) for i in range(40)], seed=1), nn.ReLU(),
                         with_spectrum(40, 10, [float(10 - i) for i in range(10)], seed=2))


@pytest.mark.parametrize("tau,expected", [(0.63, 1), (0.65, 2), (0.79, 2), (0.85, 3), (0.9, 4), (0.95, 5),
                                          (0.985, 6), (0.999, 7)])
def test_energy_rule_on_a_known_spectrum(tau: float, expected: int) -> None:
    ranks = energy_ranks(nn.Sequential(with_spectrum(64, 48, SPECTRUM)), tau, multiple=1)
    assert ranks == {"0": expected}


def test_energy_rule_rounds_up_to_the_multiple_and_falls_back_to_dense() -> None:
    ranks = energy_ranks(mlp(), 0.9, multiple=8)
    assert ranks["0"] == 8  # 4 rounded up to 8
    # 40x10 classifier: break-even 40*10/50 = 8, and 90% of (10..1)^2 needs 6 -> rounded to 8 -> dense
    assert ranks["4"] is None
    assert ranks["2"] is None or ranks["2"] < break_even_rank(48, 40)


def test_round_rank_and_dense_fallback() -> None:
    assert round_rank(1, 8, 3000) == 8 and round_rank(9, 8, 3000) == 16 and round_rank(9, 8, 10) == 10
    assert dense_if_no_saving(8, 1000, 10) == 8  # r* = 9.9: rank 8 still saves, 10 does not
    assert dense_if_no_saving(10, 1000, 10) is None
    assert dense_if_no_saving(9, 1000, 10) == 9
    with pytest.raises(ValueError, match="multiple must be a positive integer"):
        round_rank(3, 0, 10)
    with pytest.raises(ValueError, match=r"tau .* must be in \(0, 1\]"):
        energy_ranks(mlp(), 1.5)


@pytest.mark.parametrize("budget", [1500, 2000, 3000, 4000, 5000, 6000])
def test_budget_rule_never_exceeds_its_budget(budget: int) -> None:
    model = mlp()
    ranks = budget_ranks(model, budget, multiple=4)
    used = ranks_macs(model, ranks)
    assert used <= budget
    assert used == sum(layer_macs(ranks[n], m.in_features, m.out_features)
                       for n, m in model.named_modules() if isinstance(m, nn.Linear))
    compressed, _ = compress_model(model, ranks=ranks)  # the rules' output is what compress_model takes
    assert compressed(torch.randn(3, 64)).shape == (3, 10)


def test_budget_rule_rejects_an_impossible_budget() -> None:
    with pytest.raises(ValueError, match="below the cheapest setting"):
        budget_ranks(mlp(), 100, multiple=4)


def test_cheapest_budget_is_the_smallest_the_rule_accepts() -> None:
    model = mlp()
    low = cheapest_budget(model, multiple=4)
    assert low == 4 * (64 + 48) + 4 * (48 + 40) + 4 * (40 + 10)  # 4 ranks each, all below break-even
    assert cheapest_budget(model, multiple=8) == 8 * (64 + 48) + 8 * (48 + 40) + 40 * 10  # 40-to-10 stays dense
    assert ranks_macs(model, budget_ranks(model, low, multiple=4)) == low
    with pytest.raises(ValueError, match="below the cheapest setting"):
        budget_ranks(model, low - 1, multiple=4)


def test_a_larger_budget_keeps_at_least_as_much_energy() -> None:
    model = mlp()
    small, large = budget_ranks(model, 2000, multiple=4), budget_ranks(model, 5000, multiple=4)
    for name in small:
        assert (large[name] is None) or (small[name] is not None and large[name] >= small[name])


def test_budget_rule_spends_where_the_given_spectra_say() -> None:
    """With ``layer_spectra`` the rule follows them, not the weights: told that the middle layer
    holds all its energy in one direction, it gives that layer no more than the minimum and
    spends the budget on the first layer instead."""
    model = mlp()
    own = budget_ranks(model, 2400, multiple=4)
    spiked = [LayerSpectrum(sp.name, sp.in_features, sp.out_features,
                            torch.nn.functional.one_hot(torch.tensor(0), len(sp.s)).double() if sp.name == "2"
                            else sp.s) for sp in spectra(model)]
    told = budget_ranks(model, 2400, multiple=4, layer_spectra=spiked)
    assert own["2"] > 4 and told["2"] == 4, (own, told)
    assert told["0"] > own["0"], (own, told)
    assert ranks_macs(model, told) <= 2400
