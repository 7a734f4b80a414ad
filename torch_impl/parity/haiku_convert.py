"""Weight conversion between this project's torch modules and Haiku parameter trees, and
Haiku parameter files.

The Haiku side is plain numpy (``{"conv1": {"w": HWIO, "b": [out]}, "fc1": {"w": [in, out],
"b": [out]}, ...}``), so ``jax_ref`` never needs torch and this module never needs JAX.
Dense trees come under two namings: the explicit ``conv1``..``fc5`` (``jax_ref``'s spatial
network) and Haiku's automatic ``conv2_d``, ``conv2_d_1``, ``linear``..``linear_4`` (the
take-home's ``hk.Sequential``, and so every take-home user's saved parameters). Which
network a tree holds is read from its shapes, never from its names.

    torch Conv2d weight   [out, in, kh, kw]  (OIHW)  <->  Haiku Conv2D w  [kh, kw, in, out] (HWIO)
    torch Linear weight   [out, in]                  <->  Haiku Linear w  [in, out]
    torch LowRankLinear   A [r, in], B [out, r]      <->  Haiku fcK_u w [in, r], fcK_v w [r, out]
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from torch_impl.lowrank import LowRankLinear
from torch_impl.model import CONV_LAYERS, FLAT_FEATURES_BY_POOLING, HIDDEN_WIDTHS, LINEAR_LAYERS, Net

CANONICAL = ("conv1", "conv2", "fc1", "fc2", "fc3", "fc4", "fc5")
TAKE_HOME = ("conv2_d", "conv2_d_1", "linear", "linear_1", "linear_2", "linear_3", "linear_4")
TORCH_TO_HAIKU = dict(zip((*CONV_LAYERS, *LINEAR_LAYERS), CANONICAL))
PICKLE_SUFFIXES = (".pkl", ".pickle", ".p")

HaikuTree = dict[str, dict[str, np.ndarray]]


def canonical_names(params: Mapping) -> HaikuTree:
    """A dense tree under ``conv1``..``fc5``, from either naming."""
    names = set(params)
    if names == set(CANONICAL):
        return {m: dict(params[m]) for m in CANONICAL}
    if names == set(TAKE_HOME):
        return {c: dict(params[t]) for c, t in zip(CANONICAL, TAKE_HOME)}
    raise ValueError(f"Haiku parameters must have the modules {list(TAKE_HOME)} (the take-home's names) "
                     f"or {list(CANONICAL)}; got {sorted(names)} (a low-rank tree cannot become a dense Net)")


def haiku_pooling(params: Mapping) -> str:
    """Which network a dense tree (either naming) holds, from conv2's kernel and fc1's input."""
    tree = canonical_names(params)
    conv2, fc1 = (tuple(np.shape(tree[m].get("w"))) for m in ("conv2", "fc1"))
    for pooling, c_in in (("spatial", 18), ("haiku", 9)):
        if conv2 == (5, 5, c_in, 48) and fc1[:1] == (FLAT_FEATURES_BY_POOLING[pooling],):
            return pooling
    raise ValueError(f"these Haiku parameters match neither network: conv2 w {conv2}, fc1 w {fc1}; expected "
                     "(5, 5, 18, 48) and (3072, width) (pooling over H and W) or (5, 5, 9, 48) and (6144, width) "
                     "(the take-home's code as it runs)")


def haiku_widths(params: Mapping) -> tuple[int, ...]:
    """The hidden widths of a dense tree (either naming), from fc1..fc4's weights."""
    tree = canonical_names(params)
    return tuple(int(np.shape(tree[f"fc{i}"].get("w"))[-1]) for i in range(1, 5))


def load_haiku_params(path: str | Path, trust_pickle: bool = False) -> HaikuTree:
    """Dense Haiku parameters from a file: ``.npz`` with ``module/name`` keys, or a pickled dict.

    A pickle can run any code as it loads, so it is read only when the caller says the file
    is trusted (``trust_pickle``, ``--trust-pickle`` on the scripts).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Haiku parameters at {path}")
    if path.suffix == ".npz":
        tree: dict[str, dict[str, np.ndarray]] = {}
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                if "/" not in key:
                    raise ValueError(f"{path}: key {key!r} is not module/name (write it as np.savez(path, "
                                     "**{f'{m}/{n}': v for m, d in params.items() for n, v in d.items()}))")
                module, name = key.rsplit("/", 1)
                tree.setdefault(module, {})[name] = z[key]
        return tree
    if path.suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise ValueError(f"{path} is a pickle, which can run code as it loads; pass --trust-pickle if you "
                             "trust it, or save it as .npz (module/name keys) instead")
        with path.open("rb") as f:
            blob = pickle.load(f)  # noqa: S301 - the caller vouched for this file
        if not isinstance(blob, Mapping) or not all(isinstance(v, Mapping) for v in blob.values()):
            raise ValueError(f"{path} does not hold a Haiku parameter dict ({{module: {{'w': ..., 'b': ...}}}})")
        return {m: {n: np.asarray(v) for n, v in d.items()} for m, d in blob.items()}
    raise ValueError(f"{path}: unknown suffix {path.suffix!r}; Haiku parameters are read from .npz or "
                     f"(with --trust-pickle) {', '.join(PICKLE_SUFFIXES)}")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def torch_to_haiku(model: nn.Module, names: str = "auto") -> HaikuTree:
    """Numpy Haiku parameters for a ``Net`` (dense) or a compressed copy of it.

    ``names``: "auto" gives a dense tree the names of ``jax_ref``'s network of the same pooling
    (the take-home's names for "haiku" at the take-home's widths, ``conv1``..``fc5`` otherwise);
    "canonical" or
    "take-home" choose. Low-rank trees always use ``conv1``, ``conv2``, ``fcK_u``, ``fcK_v``.
    """
    if names not in ("auto", "canonical", "take-home"):
        raise ValueError(f"names must be auto, canonical or take-home, got {names!r}")
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
    dense = set(out) == set(CANONICAL)
    literal = (getattr(model, "pooling", "spatial") == "haiku"
               and tuple(getattr(model, "widths", HIDDEN_WIDTHS)) == HIDDEN_WIDTHS)
    if dense and (names == "take-home" or (names == "auto" and literal)):
        return {t: out[c] for c, t in zip(CANONICAL, TAKE_HOME)}
    return out


def _expect(arr: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.shape != shape:
        raise ValueError(f"{what}: expected shape {shape}, got {arr.shape}")
    return arr


def haiku_to_torch(params: Mapping) -> Net:
    """A dense ``Net`` of the matching network holding the given Haiku parameters (either
    naming); every name and shape is checked."""
    params = {m: {n: np.asarray(v) for n, v in d.items()} for m, d in canonical_names(params).items()}
    net = Net(haiku_pooling(params), init=False, widths=haiku_widths(params))
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
