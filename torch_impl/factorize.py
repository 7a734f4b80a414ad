"""Factorize the linear layers of any ``nn.Module``: the public entry point, ``factorize_``.

The convention is torchao's ``quantize_(model, config, filter_fn)``: the model changes in
place, a config says how ranks are chosen, and ``filter_fn(module, name)`` which layers are
candidates. ``LowRankConfig`` takes exactly one rule:

    rank_fraction f   ``max(1, floor(f * min(in, out)))`` per layer (the take-home's rule)
    energy tau        the smallest rank holding a share ``tau`` of the layer's squared spectrum
    mac_budget M      ranks spread over the layers so that they cost at most M multiply-
                      accumulates per example, where a rank buys the most spectrum per MAC
    time_budget T     the same in seconds per example, by ``cost`` (a measured table:
                      ``measure.latency_table.measure(model, batch).cost``)
    ranks {name: r}   given per layer

Rules that do not save work are not applied: a rank at or above the break-even
``r* = in*out / (in+out)`` costs more than the dense layer (at f = 1 the factorized form takes
about twice the dense MACs), so such a layer stays dense unless ``keep_unprofitable`` asks
otherwise, and the report says why. The report has one row per linear layer: factorized
(rank, parameters and MACs before and after) or kept dense, with the reason.

With ``calibration`` (a batch of the model's own inputs), the factors are data-aware: each layer
keeps the principal subspace of its outputs on those inputs rather than of its weight
(``data_aware``), layers in module order, each calibrated behind the ones already replaced;
the energy and budget rules then read the outputs' spectra too.

Candidates are modules whose type is exactly ``nn.Linear``. A subclass is left alone and
reported: ``nn.MultiheadAttention``'s ``out_proj`` is one, and the attention uses its weight
through ``F.multi_head_attention_forward``, never its ``forward``, so a replacement would be
bypassed. A layer used under several names (one ``nn.Linear`` called twice) is replaced under
every name by the same ``LowRankLinear``, so its weights stay shared.
"""

from __future__ import annotations

import copy
import fnmatch
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from torch_impl.data_aware import data_aware_layer, output_spectrum, output_stats
from torch_impl.lowrank import (
    LayerReport,
    LowRankLinear,
    Mode,
    break_even_rank,
    check_mode,
    linear_svd,
    rank_from_fraction,
)
from torch_impl.rank_select import DEFAULT_MULTIPLE, LayerCost, LayerSpectrum, budget_ranks, energy_ranks

FilterFn = Callable[[nn.Module, str], bool]
Calibration = torch.Tensor | Iterable  # a batch of inputs, or batches (tensors or (inputs, ...) tuples)
RULES = ("rank_fraction", "energy", "mac_budget", "time_budget", "ranks")


@dataclass(frozen=True)
class LowRankConfig:
    """How ranks are chosen: exactly one of ``rank_fraction``, ``energy``, ``mac_budget``, ``ranks``.

    ``multiple``: the energy and budget rules round ranks up to it (vectorised kernels);
    ``cost``: ``(rank or None, in, out) -> seconds per example``, for ``time_budget``;
    ``mode``: "factorized" (two matmuls) or "reconstructed" (their product formed once);
    ``keep_unprofitable``: factorize a layer even where its rank saves no work."""

    rank_fraction: float | None = None
    energy: float | None = None
    mac_budget: int | None = None
    time_budget: float | None = None
    ranks: dict[str, int] | None = field(default=None, hash=False)
    cost: LayerCost | None = field(default=None, hash=False, compare=False)
    multiple: int = DEFAULT_MULTIPLE
    mode: Mode = "factorized"
    keep_unprofitable: bool = False

    def __post_init__(self) -> None:
        given = [r for r in RULES if getattr(self, r) is not None]
        if len(given) != 1:
            raise ValueError(f"LowRankConfig takes exactly one of {', '.join(RULES)}; got {given or 'none'}")
        if self.rank_fraction is not None:
            rank_from_fraction(self.rank_fraction, 1, 1)  # the layer's own check and message
        if (self.time_budget is None) != (self.cost is None):
            raise ValueError("time_budget needs cost= (seconds per example of a layer at a rank, e.g. "
                             "measure.latency_table.measure(model, batch_size).cost), and cost= needs time_budget")

    @property
    def rule(self) -> str:
        return next(r for r in RULES if getattr(self, r) is not None)


def by_name(*patterns: str) -> FilterFn:
    """A ``filter_fn`` choosing the layers whose name matches any of ``patterns`` (``fnmatch``:
    ``by_name("encoder.*.mlp.*", "classifier.0")``)."""
    return lambda module, name: any(fnmatch.fnmatchcase(name, p) for p in patterns)


def calibration_inputs(calibration: Calibration | None) -> torch.Tensor | None:
    """One batch from a tensor, or from a loader's batches (the first item of each tuple)."""
    if calibration is None or isinstance(calibration, torch.Tensor):
        return calibration
    batches = [b[0] if isinstance(b, (tuple, list)) else b for b in calibration]
    if not batches:
        raise ValueError("the calibration loader gave no batches")
    return torch.cat(batches)


def linear_layers(model: nn.Module, filter_fn: FilterFn | None = None
                  ) -> tuple[dict[str, nn.Linear], dict[str, str]]:
    """The candidates ``{first name: layer}``, and ``{name: why it is not one}`` for every other
    module that is an ``nn.Linear`` (subclasses; layers ``filter_fn`` leaves out)."""
    chosen, skipped = {}, {}
    for name, m in model.named_modules():
        if not isinstance(m, nn.Linear) or isinstance(m, LowRankLinear):
            continue
        if type(m) is not nn.Linear:
            skipped[name] = (f"{type(m).__name__}: a subclass of nn.Linear, whose parent may use its weight "
                             "without its forward (nn.MultiheadAttention does)")
        elif filter_fn is not None and not filter_fn(m, name):
            skipped[name] = "left out by filter_fn"
        else:
            chosen[name] = m
    return chosen, skipped


def _names_of(model: nn.Module) -> dict[int, list[str]]:
    """Every name each module is reachable under (a shared module has several)."""
    names: dict[int, list[str]] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        names.setdefault(id(m), []).append(name)
    return names


def _choose_ranks(model: nn.Module, layers: dict[str, nn.Linear], config: LowRankConfig, svds: dict,
                  spectra: list[LayerSpectrum] | None = None) -> dict[str, int | None]:
    if config.rank_fraction is not None:
        return {n: rank_from_fraction(config.rank_fraction, m.in_features, m.out_features) for n, m in layers.items()}
    if config.ranks is not None:
        unknown = sorted(set(config.ranks) - set(layers))
        if unknown:
            raise ValueError(f"ranks names {unknown}, which are not candidate layers; candidates: {sorted(layers)}")
        return {n: config.ranks.get(n) for n in layers}
    spectra = spectra or [LayerSpectrum(n, m.in_features, m.out_features, svds[n][1]) for n, m in layers.items()]
    if config.energy is not None:
        return energy_ranks(model, config.energy, config.multiple, layer_spectra=spectra)
    if config.time_budget is not None:
        return budget_ranks(model, config.time_budget, config.multiple, layer_spectra=spectra, cost=config.cost,
                            unit="s per example")
    return budget_ranks(model, config.mac_budget, config.multiple, layer_spectra=spectra)


def _dense_row(name: str, m: nn.Linear, why: str) -> LayerReport:
    params = m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
    macs = m.in_features * m.out_features
    return LayerReport(name, m.in_features, m.out_features, None, params, params, macs, macs, kept=why)


def factorize_(model: nn.Module, config: LowRankConfig, filter_fn: FilterFn | None = None,
               svds: dict | None = None, calibration: Calibration | None = None) -> list[LayerReport]:
    """Replace ``model``'s chosen linear layers by ``LowRankLinear`` in place; one report row per
    linear layer, in module order. ``svds``: ``{name: linear_svd(layer)}`` computed earlier;
    ``calibration``: inputs of the model's own for data-aware factors (module doc), a batch or a
    loader's batches."""
    calibration = calibration_inputs(calibration)
    layers, skipped = linear_layers(model, filter_fn)
    svds, spectra = dict(svds or {}), None
    if config.rule in ("energy", "mac_budget", "time_budget"):  # these rules read every candidate's spectrum
        if calibration is not None:
            spectra = [output_spectrum(model, n, calibration) for n in layers]
        else:
            svds.update({n: linear_svd(m) for n, m in layers.items() if n not in svds})
    ranks = _choose_ranks(model, layers, config, svds, spectra)
    names = _names_of(model)
    rows = {n: _dense_row(n, model.get_submodule(n), why) for n, why in skipped.items()}
    for name, m in layers.items():
        rank, r_star = ranks[name], break_even_rank(m.in_features, m.out_features)
        if rank is None:
            why = ("not in ranks" if config.rule == "ranks" else
                   f"the {config.rule} rule keeps it dense (its rank would not be below r* = {r_star:.1f})")
            rows[name] = _dense_row(name, m, why)
            continue
        if rank >= r_star and not config.keep_unprofitable:
            rows[name] = _dense_row(name, m, f"rank {rank} >= r* = {r_star:.1f}: factorizing would cost more "
                                             "MACs than the dense layer")
            continue
        try:
            if calibration is not None:  # behind the layers already replaced (module order)
                new = data_aware_layer(m, *output_stats(model, name, calibration), rank)
                new.mode = check_mode(config.mode)
            else:
                new = LowRankLinear.from_linear(m, rank=rank, mode=config.mode, svd=svds.get(name))
        except ValueError as err:
            raise ValueError(f"layer {name!r}: {err}") from None
        for alias in names[id(m)]:
            model.set_submodule(alias, new)
        bias = m.out_features if m.bias is not None else 0
        rows[name] = LayerReport(name, m.in_features, m.out_features, rank, m.in_features * m.out_features + bias,
                                 rank * (m.in_features + m.out_features) + bias, m.in_features * m.out_features,
                                 new.macs(), shared_as=names[id(m)][1:])
    order = [n for n, _ in model.named_modules() if n in rows]
    return [rows[n] for n in order] + [rows[n] for n in rows if n not in order]


def report_table(report: list[LayerReport]) -> str:
    """The report as text: one line per layer, then the totals."""
    w = max([5, *(len(r.name) for r in report)]) + 2
    lines = [f"{'layer':<{w}}{'shape':>12}{'rank':>6}{'params before':>15}{'after':>12}{'MACs before':>13}"
             f"{'after':>12}  note"]
    for r in report:
        note = r.kept or (f"shared as {', '.join(r.shared_as)}" if r.shared_as else "")
        lines.append(f"{r.name:<{w}}{f'{r.in_features}x{r.out_features}':>12}{'' if r.rank is None else r.rank:>6}"
                     f"{r.params_before:>15,}{r.params_after:>12,}{r.macs_before:>13,}{r.macs_after:>12,}  {note}")
    lines.append(f"{'total':<{w + 18}}{sum(r.params_before for r in report):>15,}"
                 f"{sum(r.params_after for r in report):>12,}{sum(r.macs_before for r in report):>13,}"
                 f"{sum(r.macs_after for r in report):>12,}")
    return "\n".join(lines)


def compress_model(model: nn.Module, rank_fraction: float | None = None,
                   ranks: dict[str, int] | None = None, mode: Mode = "factorized",
                   svds: dict | None = None) -> tuple[nn.Module, list[LayerReport]]:
    """A copy of ``model`` with its ``nn.Linear`` layers factorized at exactly the ranks asked,
    profitable or not (the rank sweep draws the whole curve): one ``rank_fraction`` for every
    layer, or ``ranks`` by layer name (layers missing from it stay dense). ``model`` is not
    touched. Returns the copy and the per-layer report (``factorize_``'s)."""
    if (rank_fraction is None) == (ranks is None):
        raise ValueError("pass exactly one of rank_fraction= or ranks=")
    modules = dict(model.named_modules())
    for name in ranks or {}:
        if name not in modules:
            raise ValueError(f"ranks names {name!r}, which is not a layer of the model; "
                             f"linear layers: {[n for n, m in modules.items() if isinstance(m, nn.Linear)]}")
        if not isinstance(modules[name], nn.Linear):
            raise ValueError(f"layer {name!r} is a {type(modules[name]).__name__}; only nn.Linear "
                             "layers can be replaced by LowRankLinear")
    config = LowRankConfig(rank_fraction=rank_fraction, ranks=ranks, mode=check_mode(mode), keep_unprofitable=True)
    out = copy.deepcopy(model)
    return out, factorize_(out, config, svds=svds)


def lowrank_as_linears(model: nn.Module) -> nn.Module:
    """A copy with each ``LowRankLinear`` as ``Sequential(Linear(in, r, bias=False), Linear(r, out))``."""
    out = copy.deepcopy(model)
    for name, m in list(out.named_modules()):
        if isinstance(m, LowRankLinear):
            first = nn.Linear(m.in_features, m.rank, bias=False)
            second = nn.Linear(m.rank, m.out_features, bias=m.bias is not None)
            with torch.no_grad():
                first.weight.copy_(m.A)
                second.weight.copy_(m.B)
                if m.bias is not None:
                    second.bias.copy_(m.bias)
            out.set_submodule(name, nn.Sequential(first, second))
    return out


def dynamic_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of every linear layer, low-rank factors included (CPU only,
    as torch's kernels are): int8 weights, activations quantized per call.

    This stays on ``torch.ao`` (deprecated, removal planned) for eager: torchao's
    ``Int8DynamicActivationInt8WeightConfig`` is meant for ``torch.compile``, and in eager it was
    no faster than fp32 on this network's MLP, while torch.ao's int8 was ~3x faster. Under
    torch.compile torchao wins (``torch_impl/deploy/int8.py``)."""
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("dynamic int8 quantization runs on the CPU: move the model there first")
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(lowrank_as_linears(model).eval(), {nn.Linear}, dtype=torch.qint8)
