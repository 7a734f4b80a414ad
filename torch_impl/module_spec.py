"""A module tree as JSON: each module's type and constructor arguments, and back.

A compressed model is the dense ``Net`` with some modules swapped (``LowRankLinear``,
``LowRankConv2d``, a stride-2 convolution from a folded pool, narrower layers from pruned
channels, dynamic int8 linears). ``module_spec`` writes the tree down; ``build_module``
builds it again, untrained, ready for ``load_state_dict``. Only the types in ``_BUILDERS``
can be named, so a manifest cannot make the loader construct anything else
(``torch_impl.artifact`` stores the weights beside it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
from torch.nn.utils import prune

from torch_impl.lowrank import LowRankLinear
from torch_impl.lowrank_conv import LowRankConv2d
from torch_impl.model import HIDDEN_WIDTHS, FlattenHWC, HaikuAvgPool, Net, Normalize


def _conv_args(m: nn.Conv2d) -> dict[str, Any]:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels, "kernel_size": list(m.kernel_size),
            "stride": list(m.stride), "padding": list(m.padding), "dilation": list(m.dilation),
            "groups": m.groups, "bias": m.bias is not None}


def module_spec(m: nn.Module) -> dict[str, Any]:
    """The module tree as JSON-ready dicts: ``type``, constructor arguments, ``children``."""
    if prune.is_pruned(m):
        raise ValueError("the model still carries pruning masks: bake them in first "
                         "(torch_impl.compare.non_svd.make_permanent)")
    t = type(m)
    if t is Net:
        return {"type": "Net", "pooling": m.pooling, "widths": list(m.widths),
                "children": {n: module_spec(c) for n, c in m.named_children()}}
    if t is nn.Sequential:
        return {"type": "Sequential", "children": [module_spec(c) for c in m.children()]}
    if t is nn.Linear:
        return {"type": "Linear", "in_features": m.in_features, "out_features": m.out_features,
                "bias": m.bias is not None}
    if t is nn.Conv2d:
        return {"type": "Conv2d", **_conv_args(m)}
    if t is LowRankLinear:
        return {"type": "LowRankLinear", "in_features": m.in_features, "out_features": m.out_features,
                "rank": m.rank, "bias": m.bias is not None, "mode": m.mode}
    if t is LowRankConv2d:
        return {"type": "LowRankConv2d", "rank": m.rank, "reduce": _conv_args(m.reduce),
                "out_channels": m.expand.out_channels}
    if t is DynamicInt8Linear:
        w = m.weight()
        return {"type": "DynamicInt8Linear", "in_features": m.in_features, "out_features": m.out_features,
                "bias": m.bias() is not None, "qscheme": str(w.qscheme()).removeprefix("torch.")}
    if t is nn.AvgPool2d:
        return {"type": "AvgPool2d", "kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding}
    if t is Normalize:
        return {"type": "Normalize", **{k: list(v) for k, v in m._constants.items()}}
    if t in (nn.ReLU, FlattenHWC, HaikuAvgPool):
        return {"type": t.__name__}
    raise ValueError(f"cannot save a {t.__name__}: the compressed format knows {', '.join(_BUILDERS)}")


def _conv(a: dict[str, Any], device: str | torch.device = "cpu") -> nn.Conv2d:
    return nn.Conv2d(a["in_channels"], a["out_channels"], tuple(a["kernel_size"]), stride=tuple(a["stride"]),
                     padding=tuple(a["padding"]), dilation=tuple(a["dilation"]), groups=a["groups"],
                     bias=a["bias"], device=device)


def _net(s: dict[str, Any]) -> Net:
    with torch.device("meta"):  # every part is replaced next; the skeleton only carries the attributes
        net = Net(s["pooling"], init=False, widths=tuple(s.get("widths", HIDDEN_WIDTHS)))
    for name, child in s["children"].items():
        if name not in ("normalize", "features", "classifier"):
            raise ValueError(f"a Net has no part {name!r}")
        setattr(net, name, build_module(child))
    return net


def _low_rank_conv(s: dict[str, Any]) -> LowRankConv2d:
    shape = {**s["reduce"], "out_channels": s["out_channels"], "bias": True}
    return LowRankConv2d(_conv(shape, device="meta"), s["rank"])  # the stand-in only lends its shape


_BUILDERS = {
    "Net": _net,
    "Sequential": lambda s: nn.Sequential(*(build_module(c) for c in s["children"])),
    "Linear": lambda s: nn.Linear(s["in_features"], s["out_features"], bias=s["bias"]),
    "Conv2d": _conv,
    "LowRankLinear": lambda s: LowRankLinear(s["in_features"], s["out_features"], s["rank"], s["bias"], s["mode"]),
    "LowRankConv2d": _low_rank_conv,
    "DynamicInt8Linear": lambda s: DynamicInt8Linear(s["in_features"], s["out_features"], bias_=s["bias"],
                                                     dtype=torch.qint8),
    "AvgPool2d": lambda s: nn.AvgPool2d(s["kernel_size"], s["stride"], s["padding"]),
    "Normalize": lambda s: Normalize(tuple(s["mean"]), tuple(s["std"])),
    "ReLU": lambda s: nn.ReLU(),
    "FlattenHWC": lambda s: FlattenHWC(),
    "HaikuAvgPool": lambda s: HaikuAvgPool(),
}


def build_module(spec: dict[str, Any]) -> nn.Module:
    """The (untrained) module tree ``spec`` describes; only ``_BUILDERS``' types."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind not in _BUILDERS:
        raise ValueError(f"unknown module type {kind!r} in the manifest; known: {', '.join(_BUILDERS)}")
    try:
        return _BUILDERS[kind](spec)
    except (KeyError, TypeError) as err:
        raise ValueError(f"a {kind} in the manifest lacks or mistypes an argument: {err}") from None
