"""What a model costs per example: multiply-accumulates by layer, and the MLP's share."""

from __future__ import annotations

import torch
from torch import nn

from torch_impl.lowrank import LowRankLinear
from torch_impl.model import LINEAR_LAYERS

MLP_PREFIX = LINEAR_LAYERS[0].rsplit(".", 1)[0] + "."  # every MLP layer's name starts so


def count_macs(model: nn.Module, image_shape: tuple[int, ...] = (32, 32, 3),
               example: torch.Tensor | None = None) -> dict[str, int]:
    """Multiply-accumulates per example of each conv / linear / low-rank layer (by forward hooks
    on one example: ``example``, a batch of one of the model's own inputs, or a uint8 image of
    ``image_shape``). A linear layer costs its MACs once per output vector (per token in a
    transformer), and a layer called twice counts twice."""
    macs: dict[str, int] = {}

    def hook(name: str):
        def fn(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if isinstance(module, nn.Conv2d):
                kh, kw = module.kernel_size
                per_out = kh * kw * module.in_channels // module.groups
                cost = per_out * output[0].numel()
            else:
                vectors = output[0].numel() // module.out_features
                cost = vectors * (module.in_features * module.out_features if isinstance(module, nn.Linear)
                                  else module.macs())
            macs[name] = macs.get(name, 0) + cost
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear, LowRankLinear))]
    try:
        with torch.inference_mode():
            device = next(model.parameters()).device
            x = torch.zeros(1, *image_shape, dtype=torch.uint8) if example is None else example[:1]
            model(x.to(device))
    finally:
        for h in handles:
            h.remove()
    return macs


def total_and_mlp_macs(macs: dict[str, int]) -> tuple[int, int]:
    """All MACs per example, and those of the MLP, from ``count_macs``'s per-layer counts."""
    return sum(macs.values()), sum(v for k, v in macs.items() if k.startswith(MLP_PREFIX))
