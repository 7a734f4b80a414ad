"""Per-layer rank selection: an energy rule, a MAC-budget rule, rounding and a dense fallback.

One fraction for every layer (``lowrank.rank_from_fraction``) is what the take-home does,
and it is what collapses accuracy: at f=0.1 the 1000-to-10 classifier keeps one singular
value. These rules choose a rank per layer instead. Every rule returns
``{layer name: rank or None}`` (None: the layer stays dense), which ``compress_model``
and ``data_aware.data_aware_compress`` take as ``ranks=``.

Shapes: a weight is ``[out, in]``; ``s`` its singular values, descending, length min(in, out).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from torch_impl.lowrank import SVD, break_even_rank, model_svds

DEFAULT_MULTIPLE = 8  # ranks rounded up to a multiple of 8 suit vectorised matmul kernels


@dataclass(frozen=True)
class LayerSpectrum:
    name: str
    in_features: int
    out_features: int
    s: torch.Tensor  # float64 singular values, descending

    @property
    def max_rank(self) -> int:
        return min(self.in_features, self.out_features)

    def energy(self, rank: int) -> float:
        """Share of the squared spectrum kept by the top ``rank`` values."""
        sq = self.s.pow(2)
        return float(sq[:rank].sum() / sq.sum()) if sq.sum() > 0 else 1.0


def spectra(model: nn.Module, svds: dict[str, SVD] | None = None) -> list[LayerSpectrum]:
    """The singular values of every ``nn.Linear`` in ``model``, in module order."""
    svds = svds or model_svds(model)
    return [LayerSpectrum(n, m.in_features, m.out_features, svds[n][1])
            for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def round_rank(rank: int, multiple: int, max_rank: int) -> int:
    """``rank`` rounded up to a multiple of ``multiple``, never above ``max_rank``."""
    if multiple < 1:
        raise ValueError(f"multiple must be a positive integer, got {multiple}")
    return min(max_rank, multiple * math.ceil(rank / multiple))


def dense_if_no_saving(rank: int, in_features: int, out_features: int) -> int | None:
    """None (keep dense) when a factorized layer of this rank costs at least the dense one:
    ``rank * (in + out) >= in * out``, i.e. rank at or above in*out/(in+out)."""
    return None if rank >= break_even_rank(in_features, out_features) else rank


def energy_ranks(model: nn.Module, tau: float, multiple: int = DEFAULT_MULTIPLE,
                 svds: dict[str, SVD] | None = None,
                 layer_spectra: list[LayerSpectrum] | None = None) -> dict[str, int | None]:
    """Per layer, the smallest rank whose singular values hold a share ``tau`` of the squared
    spectrum, rounded up to ``multiple``; layers where that saves no work stay dense.
    ``layer_spectra``: the layers to rank (default: every ``nn.Linear`` of ``model``)."""
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau (share of the squared spectrum to keep) must be in (0, 1], got {tau}")
    out: dict[str, int | None] = {}
    for sp in layer_spectra if layer_spectra is not None else spectra(model, svds):
        cum = torch.cumsum(sp.s.pow(2), 0) / sp.s.pow(2).sum()
        rank = int(torch.searchsorted(cum, torch.tensor(tau - 1e-12, dtype=cum.dtype)).item()) + 1
        rank = round_rank(min(rank, sp.max_rank), multiple, sp.max_rank)
        out[sp.name] = dense_if_no_saving(rank, sp.in_features, sp.out_features)
    return out


def layer_macs(rank: int | None, in_features: int, out_features: int) -> int:
    return in_features * out_features if rank is None else rank * (in_features + out_features)


def _start_rank(in_features: int, out_features: int, multiple: int) -> int | None:
    """Where the budget rule starts a layer: ``multiple`` ranks, or dense if that is cheaper."""
    return dense_if_no_saving(round_rank(1, multiple, min(in_features, out_features)), in_features, out_features)


LayerCost = Callable[[int | None, int, int], float]  # (rank or None for dense, in, out) -> cost


def budget_ranks(model: nn.Module, mac_budget: float, multiple: int = DEFAULT_MULTIPLE,
                 svds: dict[str, SVD] | None = None,
                 layer_spectra: list[LayerSpectrum] | None = None, cost: LayerCost = layer_macs,
                 unit: str = "MACs") -> dict[str, int | None]:
    """Ranks whose linear layers together cost at most ``mac_budget`` (multiply-accumulates per
    example, or what ``cost`` measures, e.g. ``latency_table.LatencyTable.cost``), spent greedily
    where a step of ``multiple`` ranks buys the most spectral energy (as a share of that layer's
    spectrum) per unit of cost.

    Every layer starts at ``multiple`` ranks (or dense, if that is cheaper); a layer whose next
    step would reach its break-even rank switches to dense when the budget allows. The result
    never exceeds the budget; a budget below the starting cost is a ``ValueError``.
    ``layer_spectra`` replaces the weights' singular values as the measure of what a rank
    keeps (e.g. ``data_aware.output_spectra``: the layers' output variance on real images).
    """
    layers = layer_spectra if layer_spectra is not None else spectra(model, svds)
    ranks = {sp.name: _start_rank(sp.in_features, sp.out_features, multiple) for sp in layers}
    total = sum(cost(ranks[sp.name], sp.in_features, sp.out_features) for sp in layers)
    if total > mac_budget:
        raise ValueError(f"a budget of {mac_budget:,} {unit} is below the cheapest setting ({total:,} {unit}, "
                         f"{multiple} ranks per layer); raise the budget or lower the multiple")
    while True:
        best, best_gain = None, 0.0
        for sp in layers:
            r = ranks[sp.name]
            if r is None:
                continue
            nxt = dense_if_no_saving(round_rank(r + multiple, multiple, sp.max_rank), sp.in_features,
                                     sp.out_features)
            delta = cost(nxt, sp.in_features, sp.out_features) - cost(r, sp.in_features, sp.out_features)
            if total + delta > mac_budget:
                continue
            # a step that costs nothing measurable (or less) is the best there is
            gain = ((1.0 if nxt is None else sp.energy(nxt)) - sp.energy(r)) / max(delta, 1e-12 * max(total, 1))
            if gain > best_gain:
                best, best_gain = (sp, nxt, delta), gain
        if best is None:
            return ranks
        sp, nxt, delta = best
        ranks[sp.name], total = nxt, total + delta


def cheapest_budget(model: nn.Module, multiple: int = DEFAULT_MULTIPLE) -> int:
    """The smallest MAC budget ``budget_ranks`` accepts for ``model``'s linear layers: each at
    ``multiple`` ranks, or dense where that is cheaper (no SVD needed, so callers can check early)."""
    return sum(layer_macs(_start_rank(m.in_features, m.out_features, multiple), m.in_features, m.out_features)
               for m in model.modules() if isinstance(m, nn.Linear))


def ranks_macs(model: nn.Module, ranks: dict[str, int | None]) -> int:
    """Multiply-accumulates per example of the linear layers under ``ranks``."""
    return sum(layer_macs(ranks.get(n), m.in_features, m.out_features)
               for n, m in model.named_modules() if isinstance(m, nn.Linear))
