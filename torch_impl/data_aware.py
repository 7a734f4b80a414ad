"""Data-aware low-rank factors: keep each layer's *outputs* on calibration images, not its weights.

Plain SVD minimizes ``||W - W_r||``, which treats every input direction alike. But a
trained layer sees few input directions (many ReLU units upstream are dead), so the rank
is better spent on the outputs it actually produces. For a layer ``y = W x + b`` and
calibration inputs ``x`` (mean ``x_bar``), let ``C`` be the covariance of the pre-bias
outputs ``W x`` and ``V_r [out, r]`` its top ``r`` eigenvectors, ``P = V_r V_r^T``. Then

    y' = P W x + b + (I - P) W x_bar        (factors: A = V_r^T W [r, in], B = V_r [out, r])

is the best rank-``r`` affine layer on that data: its error ``(I - P) W (x - x_bar)`` is the
part of the centred outputs outside their top-``r`` principal subspace (Eckart-Young on
the output matrix). Plain SVD's factors are one rank-``r`` choice, so on the calibration
data this never does worse; ``tests/test_data_aware.py`` checks it.

The same rule factors a convolution ``[out, in, k, k]``: the outputs are per-pixel vectors,
``A`` becomes a ``k x k`` convolution to ``r`` channels and ``B`` a ``1 x 1`` one
(``lowrank_conv.LowRankConv2d``). Layers are compressed in order, each calibrated on the
inputs it receives from the already-compressed layers before it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from torch_impl.inference import predict
from torch_impl.lowrank import LowRankLinear
from torch_impl.lowrank_conv import LowRankConv2d
from torch_impl.rank_select import LayerSpectrum


def output_stats(model: nn.Module, layer_name: str, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``[out]`` and covariance ``[out, out]`` (float64) of ``layer_name``'s pre-bias outputs
    (per output vector of a linear layer, per example and pixel for a convolution) on ``images``."""
    layer = model.get_submodule(layer_name)
    acc: dict[str, torch.Tensor | int] = {"n": 0}

    conv = isinstance(layer, nn.Conv2d)

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        # a linear layer's outputs are vectors along the last dimension (tokens, positions and
        # the batch all count as examples); a convolution's, along the channels of each pixel
        y = output if module.bias is None else output - (module.bias.view(1, -1, 1, 1) if conv else module.bias)
        y = (y.permute(0, 2, 3, 1).reshape(-1, y.shape[1]) if conv else y.reshape(-1, y.shape[-1])).double()
        acc["n"] = acc["n"] + y.shape[0]
        acc["sum"] = acc.get("sum", 0) + y.sum(0)
        acc["outer"] = acc.get("outer", 0) + y.T @ y

    handle = layer.register_forward_hook(hook)
    try:
        with torch.inference_mode():
            predict(model.eval(), images)
    finally:
        handle.remove()
    n = acc["n"]
    mean = acc["sum"] / n
    return mean, acc["outer"] / n - torch.outer(mean, mean)


def pca_factors(weight: torch.Tensor, bias: torch.Tensor | None, mean: torch.Tensor, cov: torch.Tensor,
                rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``A [r, in...]``, ``B [out, r]`` and the corrected bias ``[out]`` (module doc), in ``weight``'s dtype."""
    out_ch = weight.shape[0]
    if not 1 <= rank <= out_ch:
        raise ValueError(f"rank must be in [1, {out_ch}] (the layer's outputs), got {rank}")
    w = weight.detach().double().reshape(out_ch, -1).cpu()
    _, vecs = torch.linalg.eigh(cov.cpu())  # ascending eigenvalues
    v = vecs[:, -rank:].flip(1)  # [out, r], top components first
    b = bias.detach().double().cpu() if bias is not None else torch.zeros(out_ch, dtype=torch.float64)
    new_bias = b + mean.cpu() - v @ (v.T @ mean.cpu())
    a = (v.T @ w).reshape(rank, *weight.shape[1:])
    dt, dev = weight.dtype, weight.device
    return a.to(dev, dt), v.to(dev, dt), new_bias.to(dev, dt)


def data_aware_layer(layer: nn.Module, mean: torch.Tensor, cov: torch.Tensor, rank: int) -> nn.Module:
    """The data-aware rank-``rank`` replacement of an ``nn.Linear`` or ``nn.Conv2d``."""
    if isinstance(layer, nn.Linear):
        a, b, bias = pca_factors(layer.weight, layer.bias, mean, cov, rank)
        new = LowRankLinear(layer.in_features, layer.out_features, rank, bias=True)
        with torch.no_grad():
            new.A.copy_(a)
            new.B.copy_(b)
            new.bias.copy_(bias)
        return new.to(layer.weight.device)
    if isinstance(layer, nn.Conv2d):
        a, b, bias = pca_factors(layer.weight, layer.bias, mean, cov, rank)
        return LowRankConv2d.from_factors(layer, a, b.reshape(*b.shape, 1, 1), bias)
    raise ValueError(f"data-aware factorization takes nn.Linear or nn.Conv2d, got {type(layer).__name__}")


def data_aware_compress(model: nn.Module, ranks: dict[str, int | None], calib_images: torch.Tensor) -> nn.Module:
    """A copy of ``model`` with each named layer (``nn.Linear`` or ``nn.Conv2d``; rank None: kept)
    replaced by its data-aware factorization on ``calib_images`` (uint8 NHWC training images)."""
    out = copy.deepcopy(model)
    modules = dict(out.named_modules())
    for name, rank in ranks.items():  # in the order given: module order for the rules' dicts
        if name not in modules:
            raise ValueError(f"ranks names {name!r}, which is not a layer of the model")
        if not isinstance(modules[name], (nn.Linear, nn.Conv2d)):
            raise ValueError(f"data-aware factorization takes nn.Linear or nn.Conv2d, but {name!r} is a "
                             f"{type(modules[name]).__name__}")
        if rank is None:
            continue
        mean, cov = output_stats(out, name, calib_images)
        new = data_aware_layer(modules[name], mean, cov, rank)
        out.set_submodule(name, new)
    return out


def output_spectrum(model: nn.Module, name: str, calib_inputs: torch.Tensor) -> LayerSpectrum:
    """The square roots of the output covariance's eigenvalues of the linear layer ``name`` on
    ``calib_inputs``, descending: what a data-aware rank keeps, for the rank rules.

    A weight's spectrum counts every input direction alike; the share of a layer's output
    variance that ``r`` principal components keep is the share its data-aware factors keep."""
    m = model.get_submodule(name)
    _, cov = output_stats(model, name, calib_inputs)
    eig = torch.linalg.eigvalsh(cov).flip(0).clamp_min(0)[: min(m.in_features, m.out_features)]
    return LayerSpectrum(name, m.in_features, m.out_features, eig.sqrt())


def output_spectra(model: nn.Module, calib_images: torch.Tensor) -> list[LayerSpectrum]:
    """``output_spectrum`` of every ``nn.Linear`` of ``model``, in module order."""
    return [output_spectrum(model, name, calib_images) for name, m in model.named_modules()
            if isinstance(m, nn.Linear)]
