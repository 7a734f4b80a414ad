"""How big a model is as stored: bytes and weight elements, int8 layers included."""

from __future__ import annotations

from typing import Any

from torch import nn


def stored_bytes(model: nn.Module) -> int:
    """Bytes of the tensors in ``model``'s state dict, each at its stored element size (int8
    weights one byte; a dynamically quantized layer stores its weight and bias as a tuple)."""
    def size(value: Any) -> int:
        if isinstance(value, (tuple, list)):
            return sum(size(v) for v in value)
        return value.numel() * value.element_size() if hasattr(value, "element_size") else 0
    return sum(size(v) for v in model.state_dict().values())


def stored_params(model: nn.Module) -> int:
    """Weight and bias elements as stored: parameters, plus the packed weights of dynamically
    quantized layers (which ``model.parameters()`` does not list)."""
    total = sum(p.numel() for p in model.parameters())
    for m in model.modules():
        packed = getattr(m, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            total += sum(t.numel() for t in packed._weight_bias() if t is not None)
    return total
