"""The same int8 model on torchao's path: torch.ao's dynamic int8 linears re-quantized by torchao.

``torch.ao.quantization.quantize_dynamic`` (the comparison's ``dynamic_int8``) is deprecated in
favour of torchao, whose ``Int8DynamicActivationInt8WeightConfig`` does the same arithmetic
(int8 weights, activations quantized per call) and is meant to run under ``torch.compile``.
The runtime matrix times both: the torch.ao model in eager (its only runtime) and, from the
same saved model, ``as_torchao_int8``'s copy under ``torch.compile``. Which path the
comparison builds is decided by those numbers (see ``compare/non_svd.py``).

A saved int8 model holds only int8 weights, so the torchao copy starts from their
dequantized values: torch.ao quantizes each weight per tensor, torchao per output row, so the
torchao copy's weights round a second time, to a finer grid (its accuracy is measured in the
matrix like every other row's).

Shapes: a dynamic int8 linear's packed weight ``[out, in]`` qint8 -> ``nn.Linear(in, out)``
fp32 -> torchao ``Int8Tensor`` ``[out, in]``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from torch_impl.factorize import lowrank_as_linears


def has_dynamic_int8(model: nn.Module) -> bool:
    """Whether ``model`` holds torch.ao dynamic int8 linears."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    return any(isinstance(m, DynamicInt8Linear) for m in model.modules())


def dequantized(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each torch.ao dynamic int8 linear replaced by an fp32
    ``nn.Linear`` holding its dequantized weight and its bias."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    out = copy.deepcopy(model)
    for name, m in list(out.named_modules()):
        if isinstance(m, DynamicInt8Linear):
            weight, bias = m.weight().dequantize(), m.bias()
            lin = nn.Linear(m.in_features, m.out_features, bias=bias is not None)
            with torch.no_grad():
                lin.weight.copy_(weight)
                if bias is not None:
                    lin.bias.copy_(bias)
            out.set_submodule(name, lin)
    return out


def as_torchao_int8(model: nn.Module) -> nn.Module:
    """``model``'s int8 linears on torchao's path (``quantize_`` with
    ``Int8DynamicActivationInt8WeightConfig``), to be run under ``torch.compile``."""
    if not has_dynamic_int8(model):
        raise ValueError("as_torchao_int8 expects a model with torch.ao dynamic int8 linears (dynamic_int8's output)")
    return torchao_int8(dequantized(model))


def torchao_int8(model: nn.Module) -> nn.Module:
    """A copy of an fp32 ``model`` with every linear layer, low-rank factors included, on
    torchao's dynamic int8 path (weights rounded once, per output row), for ``torch.compile``."""
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError as err:
        raise ValueError("torchao is not installed: pip install -e '.[deploy]'") from err
    out = lowrank_as_linears(model).eval()
    quantize_(out, Int8DynamicActivationInt8WeightConfig(), filter_fn=lambda m, _: isinstance(m, nn.Linear))
    return out
