"""The measured-latency table and the budget rule spending seconds: reads, interpolation, the budget held."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.test_rank_select import mlp
from torch_impl.lowrank import break_even_rank
from torch_impl.measure.latency_table import LatencyTable, measure, rank_grid
from torch_impl.rank_select import budget_ranks, layer_macs

SHAPES = [(64, 48), (48, 40), (40, 10)]  # tests.test_rank_select.mlp()'s layers


def table_from(cost_fn, multiple: int = 4) -> LatencyTable:
    """A table whose entries are ``cost_fn(rank, in, out)`` at every grid rank."""
    t = LatencyTable(batch_size=1)
    for i, o in SHAPES:
        t.dense[(i, o)] = cost_fn(None, i, o)
        t.factorized[(i, o)] = {r: cost_fn(r, i, o) for r in rank_grid(i, o, multiple)}
    return t


def test_rank_grid_doubles_below_break_even() -> None:
    grid = rank_grid(3072, 3000)
    assert grid[:4] == [8, 16, 32, 64] and grid == sorted(set(grid))
    assert max(grid) < break_even_rank(3072, 3000) and max(grid) == 1512


def test_cost_reads_measured_ranks_and_interpolates_between() -> None:
    t = LatencyTable(batch_size=8, dense={(10, 20): 5.0}, factorized={(10, 20): {4: 1.0, 8: 3.0}})
    assert t.cost(None, 10, 20) == 5.0 and t.cost(4, 10, 20) == 1.0 and t.cost(8, 10, 20) == 3.0
    assert t.cost(6, 10, 20) == pytest.approx(2.0) and t.cost(10, 10, 20) == pytest.approx(4.0)  # along the slope
    assert t.cost(2, 10, 20) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no 3x3 layer"):
        t.cost(4, 3, 3)


def test_a_table_of_macs_gives_the_mac_rules_ranks() -> None:
    """Times proportional to MACs make the latency rule the MAC rule: same ranks at every budget."""
    table = table_from(lambda r, i, o: float(layer_macs(r, i, o)))
    for budget in (1500, 3000, 6000):
        assert budget_ranks(mlp(), budget, multiple=4, cost=table.cost) == budget_ranks(mlp(), budget, multiple=4)


def test_the_rule_holds_a_latency_budget_where_thin_products_are_dear() -> None:
    """A fixed cost per factorized layer (what thin products pay on a CPU) moves ranks but never the budget."""
    table = table_from(lambda r, i, o: float(i * o) if r is None else 400.0 + r * (i + o))
    model = mlp()
    for budget in (2500.0, 4000.0, 6000.0):
        ranks = budget_ranks(model, budget, multiple=4, cost=table.cost, unit="s")
        spent = sum(table.cost(ranks[n], m.in_features, m.out_features)
                    for n, m in model.named_modules() if isinstance(m, nn.Linear))
        assert spent <= budget
    with pytest.raises(ValueError, match="budget of 100 s is below the cheapest"):
        budget_ranks(model, 100, multiple=4, cost=table.cost, unit="s")


def test_measure_times_every_shape_once() -> None:
    model = nn.Sequential(nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 24), nn.Linear(24, 24))
    t = measure(model, batch_size=16, multiple=4, min_run_s=0.01)
    assert sorted(t.dense) == [(24, 24), (32, 24)]
    assert sorted(t.factorized[(32, 24)]) == rank_grid(32, 24, 4)
    assert all(v > 0 for v in t.dense.values()) and all(v > 0 for d in t.factorized.values() for v in d.values())
    assert t.to_json()["layers"][0]["in"] == 24 and torch.get_num_threads() >= 1


def test_measure_hands_each_layer_and_factor_pair_to_the_runner() -> None:
    """The runner sees the dense layer and, per grid rank, the pair ``Linear(in, r)``, ``Linear(r, out)``
    holding the dense weight's first rows and columns; the table is labelled with its runtime."""
    seen = []

    def runner(layer: nn.Module, x: torch.Tensor):
        seen.append(layer)
        return lambda: layer(x)
    t = measure(nn.Sequential(nn.Linear(32, 24)), batch_size=8, multiple=4, min_run_s=0.01, runner=runner,
                runtime="onnxruntime", precision="int8-static")
    dense, pairs = seen[0], seen[1:]
    assert isinstance(dense, nn.Linear) and dense.weight.shape == (24, 32)
    assert [p[0].out_features for p in pairs] == rank_grid(32, 24, 4) == sorted(t.factorized[(32, 24)])
    for p in pairs:
        r = p[0].out_features
        assert p[0].bias is None and torch.equal(p[0].weight, dense.weight[:r])
        assert torch.equal(p[1].weight, dense.weight[:, :r]) and p[1].weight.shape == (24, r)
    assert t.to_json()["runtime"] == "onnxruntime" and t.to_json()["precision"] == "int8-static"
