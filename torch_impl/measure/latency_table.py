"""Measured time of the MLP's layer shapes, so a rank budget can be spent in seconds, not MACs.

MACs mislead for thin products: a rank-8 factor pair of a 3072 x 3000 layer does 0.5% of the
dense layer's MACs but, measured on 2 CPU cores, far more than 0.5% of its time (each product
reads a whole activation matrix and runs below the machine's peak). The table times, on this
host and runtime, each layer shape dense and factorized at a grid of ranks at one batch size,
and ``cost`` reads it (linear between measured ranks) in the form ``rank_select.budget_ranks``
takes, so the budget rule spends a latency budget.

Ranks are chosen for the runtime and precision the model will run in: ``measure``'s ``runner``
turns each layer (an ``nn.Linear``, or the factor pair as ``nn.Sequential(Linear(in, r),
Linear(r, out))``) into a call in that runtime (``torch_impl.deploy.layer_runners`` builds them
for ONNX Runtime, OpenVINO, bf16 and int8); the default is fp32 torch eager.

Shapes (N = batch): dense  x [N, in] @ W.T [in, out];  factorized  (x @ A.T [in, r]) @ B.T [r, out].
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils import benchmark

from torch_impl.lowrank import break_even_rank

MIN_RUN_S = 0.2  # per entry: blocked_autorange repeats the call for at least this long
# (a layer computing [N, in] -> [N, out], its input) -> a call running it in the target runtime
LayerRunner = Callable[[nn.Module, torch.Tensor], Callable[[], object]]


def rank_grid(in_features: int, out_features: int, multiple: int = 8) -> list[int]:
    """``multiple`` doubled up to the break-even rank, and the last multiple below it."""
    top = int(break_even_rank(in_features, out_features))
    grid, r = [], multiple
    while r < top:
        grid.append(r)
        r *= 2
    last = multiple * (top // multiple)
    if last >= multiple and last not in grid and last < break_even_rank(in_features, out_features):
        grid.append(last)
    return sorted(grid) or [1]


@dataclass
class LatencyTable:
    """Seconds per example of each shape: ``dense[(in, out)]`` and ``factorized[(in, out)][rank]``."""

    batch_size: int
    runtime: str = "eager"
    precision: str = "fp32"
    dense: dict[tuple[int, int], float] = field(default_factory=dict)
    factorized: dict[tuple[int, int], dict[int, float]] = field(default_factory=dict)

    def cost(self, rank: int | None, in_features: int, out_features: int) -> float:
        """Seconds per example of one layer at ``rank`` (None: dense), linear between measured ranks
        and along the last measured slope beyond them."""
        key = (in_features, out_features)
        if key not in self.dense:
            raise ValueError(f"the latency table has no {in_features}x{out_features} layer; "
                             f"measured: {sorted(self.dense)}")
        if rank is None:
            return self.dense[key]
        pts = sorted(self.factorized[key].items())
        if len(pts) == 1:
            return pts[0][1] * rank / pts[0][0]
        i = min(max(bisect.bisect_left([r for r, _ in pts], rank), 1), len(pts) - 1)
        (r0, t0), (r1, t1) = pts[i - 1], pts[i]
        return max(t0 + (t1 - t0) * (rank - r0) / (r1 - r0), 0.0)

    def to_json(self) -> dict:
        return {"batch_size": self.batch_size, "runtime": self.runtime, "precision": self.precision,
                "layers": [{"in": i, "out": o, "dense_s": self.dense[(i, o)],
                            "factorized_s": {str(r): t for r, t in self.factorized[(i, o)].items()}}
                           for i, o in sorted(self.dense)]}


def _time(fn, min_run_s: float) -> float:
    return benchmark.Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()
                           ).blocked_autorange(min_run_time=min_run_s).median


def eager_fp32(layer: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """The default runner: the layer in fp32 torch eager."""
    def call() -> object:
        with torch.inference_mode():
            return layer(x)
    return call


def measure(model: nn.Module, batch_size: int, multiple: int = 8, min_run_s: float = MIN_RUN_S,
            grid: dict[tuple[int, int], list[int]] | None = None, runner: LayerRunner = eager_fp32,
            runtime: str = "eager", precision: str = "fp32") -> LatencyTable:
    """Times every ``nn.Linear`` shape of ``model`` on random float32 data at ``batch_size``,
    dense and at each rank of its grid, each as ``runner`` runs it (``runtime`` and
    ``precision`` label the table)."""
    table = LatencyTable(batch_size, runtime, precision)
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if not isinstance(m, nn.Linear) or (m.in_features, m.out_features) in table.dense:
            continue
        i, o = m.in_features, m.out_features
        x = torch.randn(batch_size, i, generator=g)
        dense = nn.Linear(i, o)
        with torch.no_grad():
            dense.weight.copy_(torch.randn(o, i, generator=g) / i ** 0.5)
            dense.bias.zero_()
        table.dense[(i, o)] = _time(runner(dense.eval(), x), min_run_s) / batch_size
        table.factorized[(i, o)] = {}
        for r in (grid or {}).get((i, o)) or rank_grid(i, o, multiple):
            pair = nn.Sequential(nn.Linear(i, r, bias=False), nn.Linear(r, o))
            with torch.no_grad():
                pair[0].weight.copy_(dense.weight[:r])
                pair[1].weight.copy_(dense.weight[:, :r])
                pair[1].bias.zero_()
            table.factorized[(i, o)][r] = _time(runner(pair.eval(), x), min_run_s) / batch_size
    return table
