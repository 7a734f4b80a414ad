"""A compressed (or dense) model on disk: safetensors weights beside a JSON manifest.

A model directory holds two files:
    model.safetensors   every tensor by its name in the module tree; no pickle, so loading
                        a file someone sent cannot run code
    manifest.json       the module tree (``torch_impl.module_spec``), a per-layer summary
                        (kind, rank, shapes), the base network and its pooling, how the model
                        was made, its measured accuracy and latency, provenance, and the
                        weights file's SHA-256 (a manifest never pairs with other weights)

``load_compressed`` needs nothing else for the take-home's network (and any model made of the
module types ``module_spec`` knows): not the recipe, not the dense weights.

Any other model (your own class) is saved as an overlay, as PEFT saves an adapter: the
manifest lists the layers that were replaced (type, rank, shapes, every name a shared layer
has), and loading takes the base model built by your own code (``base_model=``), replaces
those layers and loads the weights. With ``base_model=`` at save time, only the tensors that
differ from it are stored, with a fingerprint of the rest that loading checks.

Nothing is allocated on a manifest's word: the shapes it implies are checked against the
weights file's header (read without loading the tensors) before a model is built.

Dynamically quantized linears keep their int8 weight in a packed object, not a tensor, so
they are stored as the int8 values, scales and zero points (per tensor or per channel) and
the float bias, and repacked on load.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

from torch_impl.files import atomic_path, sha256, write_json
from torch_impl.inference import predict
from torch_impl.lowrank import LowRankLinear
from torch_impl.lowrank_conv import LowRankConv2d
from torch_impl.model import HIDDEN_WIDTHS, Net
from torch_impl.module_spec import build_module, module_spec
from torch_impl.provenance import provenance

FORMAT = "svd_compress.compressed/1"
WEIGHTS, MANIFEST = "model.safetensors", "manifest.json"
_PER_CHANNEL = (torch.per_channel_affine, torch.per_channel_symmetric)


def _int8_layers(model: nn.Module) -> dict[str, DynamicInt8Linear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, DynamicInt8Linear)}


def _under(key: str, prefixes) -> bool:
    return any(key.startswith(p + ".") for p in prefixes)


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of ``model`` by name, int8 layers unpacked (module doc); on the CPU."""
    q = _int8_layers(model)
    out = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not _under(k, q)}
    for name, m in q.items():
        w, b = m._weight_bias()
        out[f"{name}.weight_int8"] = w.int_repr().contiguous()
        if w.qscheme() in _PER_CHANNEL:
            out[f"{name}.weight_scale"] = w.q_per_channel_scales().contiguous()
            out[f"{name}.weight_zero_point"] = w.q_per_channel_zero_points().contiguous()
            out[f"{name}.weight_axis"] = torch.tensor([w.q_per_channel_axis()])
        else:
            out[f"{name}.weight_scale"] = torch.tensor([w.q_scale()], dtype=torch.float64)
            out[f"{name}.weight_zero_point"] = torch.tensor([w.q_zero_point()])
        if b is not None:
            out[f"{name}.bias"] = b.detach().contiguous()
    return out


def load_tensors(model: nn.Module, tensors: dict[str, torch.Tensor]) -> nn.Module:
    """Puts ``tensors`` (``model_tensors``' layout) into ``model``; every tensor must fit exactly."""
    q = _int8_layers(model)
    for name, m in q.items():
        try:
            values, scale, zero = (tensors[f"{name}.weight_{s}"] for s in ("int8", "scale", "zero_point"))
        except KeyError as err:
            raise ValueError(f"the weights lack {err} for the int8 layer {name!r} the manifest names") from None
        if f"{name}.weight_axis" in tensors:
            w = torch._make_per_channel_quantized_tensor(values, scale, zero, int(tensors[f"{name}.weight_axis"]))
        else:
            w = torch._make_per_tensor_quantized_tensor(values, float(scale), int(zero))
        m.set_weight_bias(w, tensors.get(f"{name}.bias"))
    # The model's own state dict carries the int8 layers' packed form and the version metadata
    # their loader needs; the float entries are replaced by the file's.
    state = model.state_dict()
    wanted = {k for k in state if not _under(k, q)}
    given = {k for k in tensors if not _under(k, q)}
    if wanted != given:
        raise ValueError(f"the weights do not fit the manifest's modules: missing {sorted(wanted - given)[:5]}, "
                         f"unexpected {sorted(given - wanted)[:5]}")
    for k in wanted:
        state[k] = tensors[k]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"the weights do not fit the manifest's modules: {' '.join(str(err).split())[:300]}") from None
    return model


def layer_summary(model: nn.Module) -> list[dict[str, Any]]:
    """Each weight layer: name, kind (dense, low-rank, low-rank conv, folded pool, pruned
    channels, int8), rank where it has one, and its weight shapes."""
    base_shapes = {}
    if isinstance(model, Net):  # pruned channels show as shapes the network's own differ from
        with torch.device("meta"):
            base = Net(model.pooling, init=False, widths=getattr(model, "widths", HIDDEN_WIDTHS))
        base_shapes = {n: tuple(m.weight.shape) for n, m in base.named_modules()
                       if isinstance(m, (nn.Linear, nn.Conv2d))}
    out, inside = [], ()
    for name, m in model.named_modules():
        if inside and name.startswith(inside):
            continue
        row: dict[str, Any] | None = None
        if isinstance(m, LowRankLinear):
            row = {"kind": "low-rank", "rank": m.rank, "shapes": {"A": list(m.A.shape), "B": list(m.B.shape)}}
        elif isinstance(m, LowRankConv2d):
            row = {"kind": "low-rank conv", "rank": m.rank,
                   "shapes": {"reduce": list(m.reduce.weight.shape), "expand": list(m.expand.weight.shape)}}
            inside = name + "."
        elif isinstance(m, DynamicInt8Linear):
            row = {"kind": "int8", "shapes": {"weight": [m.out_features, m.in_features]}}
        elif isinstance(m, (nn.Linear, nn.Conv2d)):
            shape = tuple(m.weight.shape)
            kind = ("folded pool" if isinstance(m, nn.Conv2d) and m.stride != (1, 1)
                    else "pruned channels" if name in base_shapes and base_shapes[name] != shape else "dense")
            row = {"kind": kind, "shapes": {"weight": list(shape)}}
        if row is not None:
            out.append({"name": name, **row})
    return out


def logits_fingerprint(model: nn.Module, images: torch.Tensor) -> str:
    """SHA-256 of ``model``'s float32 logits on ``images`` (through ``inference.predict``): equal
    fingerprints mean bit-identical predictions. The same machine and thread count give the
    same bits; another CPU may differ in the last bits, and then only accuracy compares."""
    with torch.inference_mode():
        logits = predict(model.eval(), images).float().contiguous().cpu().numpy()
    return hashlib.sha256(logits.tobytes()).hexdigest()


def replaced_layers(model: nn.Module) -> list[dict[str, Any]]:
    """Every ``LowRankLinear`` of ``model`` as an overlay manifest records it (all its names)."""
    found: dict[int, tuple[LowRankLinear, list[str]]] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        if isinstance(m, LowRankLinear):
            found.setdefault(id(m), (m, []))[1].append(name)
    return [{"names": names, "type": "LowRankLinear", "in_features": m.in_features, "out_features": m.out_features,
             "rank": m.rank, "bias": m.bias is not None, "mode": m.mode} for m, names in found.values()]


def _fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names and bytes: the base model's tensors an overlay did not store."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        h.update(k.encode())
        h.update(tensors[k].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _overlay_tensors(model: nn.Module, base_model: nn.Module | None) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors an overlay stores, and what the manifest says of them."""
    if any(not isinstance(m, (nn.Linear, LowRankLinear)) and type(m).__module__.startswith("torch.ao")
           for m in model.modules()):
        raise ValueError("a model of your own class is saved as an overlay of LowRankLinear layers; "
                         "it holds quantized layers, which only the take-home's network can save")
    tensors, seen = {}, set()
    for k, v in model.state_dict().items():  # a shared layer's tensors under each name, stored apart
        v = v.detach().cpu().contiguous()
        tensors[k] = v.clone() if v.data_ptr() in seen else v
        seen.add(v.data_ptr())
    if base_model is None:
        return tensors, {"stored": "all"}
    base = base_model.state_dict()
    replaced = [name for entry in replaced_layers(model) for name in entry["names"]]
    changed = {k: v for k, v in tensors.items() if _under(k, replaced) or k not in base or base[k].shape != v.shape
               or not torch.equal(base[k].detach().cpu(), v)}
    rest = {k: v for k, v in base.items() if k not in changed and k in tensors}
    return changed, {"stored": "changed", "base_sha256": _fingerprint(rest), "base_tensors": sorted(rest)}


def save_compressed(directory: str | Path, model: nn.Module, method: dict[str, Any] | None = None,
                    metrics: dict[str, Any] | None = None, base_model: nn.Module | None = None) -> Path:
    """Writes ``model`` to ``directory`` (weights first, then the manifest; each atomically)
    and returns the manifest's path. ``method``: how it was made; ``metrics``: what was measured.
    A model of your own class is saved as an overlay (module doc); ``base_model``: the model it
    was made from, so that only what changed is stored."""
    directory = Path(directory)
    try:
        spec = module_spec(model)
    except ValueError:
        spec = None  # not self-describing: an overlay on the caller's own base model
    overlay: dict[str, Any] = {}
    if spec is None or base_model is not None:
        tensors, overlay = _overlay_tensors(model, base_model)
        spec = None
    else:
        tensors = model_tensors(model)
    with atomic_path(directory / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    base = ({"network": "Net", "pooling": model.pooling, "widths": list(model.widths)} if isinstance(model, Net)
            else {"network": type(model).__name__})
    manifest = {
        "format": FORMAT,
        "base": base,
        "layers": layer_summary(model),
        "replaced": replaced_layers(model),
        **overlay,
        "method": method or {},
        "metrics": metrics or {},
        "weights": {"file": WEIGHTS, "sha256": sha256(directory / WEIGHTS), "tensors": len(tensors),
                    "bytes": sum(t.numel() * t.element_size() for t in tensors.values())},
        "module": spec,
        "provenance": provenance(next(model.parameters(), torch.empty(0)).device),
    }
    return write_json(directory / MANIFEST, manifest)


def read_manifest(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(the model directory, its manifest) for a directory or its ``manifest.json``."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no {MANIFEST} in {directory}: pass a directory written by save_compressed "
                                "(scripts/compare_methods.py saves its Pareto-front models under <out-dir>/models/)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{manifest_path} is not valid JSON ({err}); the model directory is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path} is not a {FORMAT} manifest (format: "
                         f"{manifest.get('format') if isinstance(manifest, dict) else None!r})")
    return directory, manifest


def header_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in a safetensors file, read from its header (nothing loaded)."""
    try:
        with safe_open(str(weights), "pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{weights} is not a readable safetensors file ({err})") from None


def _check_claims(module_spec_: dict[str, Any], shapes: dict[str, tuple[int, ...]], directory: Path) -> None:
    """Refuses a manifest whose modules hold more elements than the weights file: built on the
    meta device (no memory), its tensors are counted before anything is allocated."""
    try:
        with torch.device("meta"):
            state = {k: v for k, v in build_module(module_spec_).state_dict().items() if isinstance(v, torch.Tensor)}
    except RuntimeError:  # NotImplementedError is one
        return  # quantized modules cannot be built on the meta device; their sizes are checked on load
    wrong = sorted(k for k, v in state.items() if k in shapes and tuple(v.shape) != shapes[k])
    if wrong:
        raise ValueError(f"{directory / MANIFEST} describes {wrong[0]} as {tuple(state[wrong[0]].shape)}, but "
                         f"{WEIGHTS} holds {shapes[wrong[0]]} (and {len(wrong) - 1} more); the manifest does not fit "
                         "its weights (refused before allocating anything)")
    claimed = sum(v.numel() for v in state.values())
    held = sum(int(torch.Size(s).numel()) for s in shapes.values())
    if claimed > held:
        raise ValueError(f"{directory / MANIFEST} describes modules of {claimed:,} elements but {WEIGHTS} holds "
                         f"{held:,}; the manifest does not fit its weights (refused before allocating anything)")


def _apply_overlay(base_model: nn.Module, manifest: dict[str, Any], shapes: dict[str, tuple[int, ...]],
                   directory: Path) -> nn.Module:
    """``base_model`` with the manifest's layers replaced, every shape checked against the file."""
    modules = dict(base_model.named_modules(remove_duplicate=False))
    for entry in manifest.get("replaced", []):
        first = modules.get(entry["names"][0])
        if not isinstance(first, (nn.Linear, LowRankLinear)) or (first.in_features, first.out_features) != (
                entry["in_features"], entry["out_features"]):
            raise ValueError(f"{directory}: the base model's {entry['names'][0]!r} is not a "
                             f"{entry['in_features']}->{entry['out_features']} linear layer "
                             f"({type(first).__name__ if first is not None else 'missing'}); pass the model this "
                             "directory was made from")
        layer = LowRankLinear(entry["in_features"], entry["out_features"], entry["rank"], entry["bias"], entry["mode"])
        for name in entry["names"]:
            base_model.set_submodule(name, layer)
    expected = {k: tuple(v.shape) for k, v in base_model.state_dict().items()}
    stored = manifest.get("stored", "all")
    unknown = sorted(set(shapes) - set(expected))
    missing = sorted(set(expected) - set(shapes)) if stored == "all" else []
    wrong = sorted(k for k in set(shapes) & set(expected) if shapes[k] != expected[k])
    if unknown or missing or wrong:
        raise ValueError(f"{directory} does not fit the base model: " + "; ".join(
            f"{what} {names[:3]}" for what, names in (("not in the model", unknown), ("not in the file", missing),
                                                     ("other shapes", wrong)) if names))
    if stored == "changed":
        rest = {k: v for k, v in base_model.state_dict().items() if k in set(manifest.get("base_tensors", []))}
        if _fingerprint(rest) != manifest.get("base_sha256"):
            raise ValueError(f"{directory} stores only what changed from its base model, and this base model's other "
                             "weights differ from that one's; load the same pretrained weights into it first")
    return base_model


def load_compressed(path: str | Path, device: str | torch.device = "cpu", base_model: nn.Module | None = None
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """The model saved at ``path`` (its directory or manifest) in eval mode, and its manifest.
    An overlay (a model of your own class) needs ``base_model``: your model, built by your code;
    its layers are replaced in place."""
    directory, manifest = read_manifest(path)
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{directory} has a manifest but no {WEIGHTS}; the model directory is incomplete")
    if sha256(weights) != manifest.get("weights", {}).get("sha256"):
        raise ValueError(f"{weights} is not the file {directory / MANIFEST} was written with (SHA-256 differs); "
                         "the directory mixes two saves: save the model again")
    shapes = header_shapes(weights)
    if manifest.get("module") is None:
        if base_model is None:
            raise ValueError(f"{directory} holds layers of a {manifest.get('base', {}).get('network')} model; pass "
                             "base_model= (that model, built by your own code) to load them into it")
        model = _apply_overlay(base_model, manifest, shapes, directory)
        tensors = load_file(str(weights))
        model.load_state_dict(tensors, strict=manifest.get("stored", "all") == "all")
        return model.to(device).eval(), manifest
    _check_claims(manifest["module"], shapes, directory)
    model = build_module(manifest["module"])
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{weights} is not a readable safetensors file ({err})") from None
    load_tensors(model, tensors)
    return model.to(device).eval(), manifest
