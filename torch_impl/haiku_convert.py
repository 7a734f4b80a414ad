"""Weight conversion between this project's torch modules and Haiku parameter trees.

The Haiku side is plain numpy (``{"conv1": {"w": HWIO, "b": [out]}, "fc1": {"w": [in, out],
"b": [out]}, ...}``), so ``jax_ref`` never needs torch and this module never needs JAX.

    torch Conv2d weight   [out, in, kh, kw]  (OIHW)  <->  Haiku Conv2D w  [kh, kw, in, out] (HWIO)
    torch Linear weight   [out, in]                  <->  Haiku Linear w  [in, out]
    torch LowRankLinear   A [r, in], B [out, r]      <->  Haiku fcK_u w [in, r], fcK_v w [r, out]
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from torch_impl.lowrank import LowRankLinear
from torch_impl.model import CONV_LAYERS, LINEAR_LAYERS, Net

TORCH_TO_HAIKU = dict(zip((*CONV_LAYERS, *LINEAR_LAYERS), ("conv1", "conv2", "fc1", "fc2", "fc3", "fc4", "fc5")))

HaikuTree = dict[str, dict[str, np.ndarray]]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def torch_to_haiku(model: nn.Module) -> HaikuTree:
    """Numpy Haiku parameters for a ``Net`` (dense) or a compressed copy of it."""
    modules = dict(model.named_modules())
    out: HaikuTree = {}
    for tname, hname in TORCH_TO_HAIKU.items():
        m = modules.get(tname)
        if isinstance(m, nn.Conv2d):
            out[hname] = {"w": _np(m.weight).transpose(2, 3, 1, 0), "b": _np(m.bias)}
        elif isinstance(m, nn.Linear):
            out[hname] = {"w": _np(m.weight).T.copy(), "b": _np(m.bias)}
        elif isinstance(m, LowRankLinear):
            out[f"{hname}_u"] = {"w": _np(m.A).T.copy()}
            out[f"{hname}_v"] = {"w": _np(m.B).T.copy(), "b": _np(m.bias)}
        else:
            raise ValueError(f"torch module {tname!r} is {type(m).__name__ if m else 'missing'}; "
                             "expected this project's Net or a compress_model copy of it")
    return out


def _expect(arr: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.shape != shape:
        raise ValueError(f"{what}: expected shape {shape}, got {arr.shape}")
    return arr


def haiku_to_torch(params: HaikuTree) -> Net:
    """A dense ``Net`` holding the given Haiku parameters; every name and shape is checked."""
    params = {m: {n: np.asarray(v) for n, v in d.items()} for m, d in params.items()}
    expected = set(TORCH_TO_HAIKU.values())
    if set(params) != expected:
        raise ValueError(f"Haiku parameters must have modules {sorted(expected)}; "
                         f"missing {sorted(expected - set(params))}, unexpected {sorted(set(params) - expected)} "
                         "(a low-rank tree cannot become a dense Net)")
    net = Net()
    state = {}
    for tname, hname in TORCH_TO_HAIKU.items():
        m = net.get_submodule(tname)
        if set(params[hname]) != {"w", "b"}:
            raise ValueError(f"{hname}: expected parameters w and b, got {sorted(params[hname])}")
        w_shape = tuple(m.weight.shape)
        if isinstance(m, nn.Conv2d):
            hwio = (w_shape[2], w_shape[3], w_shape[1], w_shape[0])
            state[f"{tname}.weight"] = _expect(params[hname]["w"], hwio, f"{hname}/w").transpose(3, 2, 0, 1)
        else:
            state[f"{tname}.weight"] = _expect(params[hname]["w"], w_shape[::-1], f"{hname}/w").T
        state[f"{tname}.bias"] = _expect(params[hname]["b"], tuple(m.bias.shape), f"{hname}/b")
    net.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32, order="C")) for k, v in state.items()})
    return net
