"""Export a dense or compressed model to ONNX (the dynamo-based exporter) or ``torch.export`` (.pt2),
and check the file: low-rank factors keep their shapes, outputs match eager, accuracy is the same.

Both exporters trace the model on a uint8 ``[N, 32, 32, 3]`` batch with N dynamic; the
normalization is part of the graph, so the file takes images as stored. Checked after
exporting, from the file as written:
  * every ``LowRankLinear`` still appears as its two factors ``[r, in]`` and ``[out, r]`` among
    the graph's weights (initializers in ONNX, the state dict of the exported program), and
    no dense ``[out, in]`` weight stands in for it: an exporter or optimizer that multiplied
    the factors back would undo the compression;
  * logits on real test images match eager within ``LOGITS_ATOL`` / ``LOGITS_RTOL``;
  * top-1 accuracy over the given images equals eager's.

Needs the ``deploy`` extra for ONNX (``pip install -e ".[deploy]"``: onnx, onnxscript, onnxruntime).
Dynamically quantized (int8) models are not exported: their packed weights have no ONNX or
``torch.export`` form; export the float model and quantize in the target runtime.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

from torch_impl.files import atomic_path
from torch_impl.inference import predict
from torch_impl.lowrank import LowRankLinear

FORMATS = ("onnx", "torch-export")
SUFFIX = {"onnx": ".onnx", "torch-export": ".pt2"}
# The exported graph runs the same fp32 operations as eager, in another runtime's kernels
# and summation order: logits agree to round-off, not bit for bit.
LOGITS_ATOL = 1e-4
LOGITS_RTOL = 1e-4
EVAL_BATCH = 1000  # images per call when checking a file
# Any model's exported outputs against eager's, as a share of the largest output: float32 kernels
# of two runtimes, summed in other orders (measured up to 1e-6 on the test networks).
OUTPUT_RTOL = 1e-4


def _example(batch: int = 2) -> tuple[torch.Tensor]:
    return (torch.zeros(batch, 32, 32, 3, dtype=torch.uint8),)


def _dynamic_batch() -> tuple[dict[int, Any]]:
    return ({0: torch.export.Dim("batch", min=1, max=100_000)},)


def check_exportable(model: nn.Module) -> None:
    if any(isinstance(m, DynamicInt8Linear) for m in model.modules()):
        raise ValueError("this model has dynamically quantized (int8) layers, which neither ONNX nor torch.export "
                         "can hold: export its float version and quantize in the target runtime "
                         "(e.g. onnxruntime.quantization.quantize_dynamic)")


def export_model(model: nn.Module, path: str | Path, fmt: str, example: torch.Tensor | None = None) -> Path:
    """Writes ``model`` (eval mode, CPU) to ``path`` in ``fmt`` ("onnx" or "torch-export"), atomically.
    ``example``: an input batch of the model's own (default: CIFAR-10's uint8 ``[2, 32, 32, 3]``);
    the file takes any batch size."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    check_exportable(model)
    model = model.eval().cpu()
    args = _example() if example is None else (example.cpu(),)
    if args[0].ndim < 1 or args[0].shape[0] < 2:
        raise ValueError(f"the example input needs a batch of at least 2 along its first dimension (so that the "
                         f"file takes any batch size), got shape {tuple(args[0].shape)}")
    path = Path(path)
    with atomic_path(path) as tmp:
        if fmt == "onnx":
            program = torch.onnx.export(model, args, dynamo=True, dynamic_shapes=_dynamic_batch(),
                                        input_names=["images"], output_names=["logits"], verbose=False)
            program.save(str(tmp))
        else:
            torch.export.save(torch.export.export(model, args, dynamic_shapes=_dynamic_batch()), str(tmp))
    return path


def _key(shape) -> tuple[int, ...]:
    """A weight's shape up to transposition: exporters and graph optimizers may store a linear
    weight as ``[in, out]`` for a MatMul instead of ``[out, in]`` for a Gemm."""
    return tuple(sorted(int(d) for d in shape))


def expected_factor_shapes(model: nn.Module) -> tuple[Counter, Counter]:
    """(weight shapes the graph must hold: each factorized layer's ``[r, in]`` and ``[out, r]``;
    how many ``[out, in]`` weights it may hold: those of the model's own dense layers)."""
    keep, dense = Counter(), Counter()
    for m in model.modules():
        if isinstance(m, LowRankLinear) and m.mode == "factorized":
            keep[_key((m.rank, m.in_features))] += 1
            keep[_key((m.out_features, m.rank))] += 1
            dense[_key((m.out_features, m.in_features))] += 0
        elif isinstance(m, (nn.Linear, nn.Conv2d)):
            dense[_key(m.weight.shape)] += 1
    return keep, dense


def factor_check(shapes: Counter, model: nn.Module) -> tuple[dict, dict]:
    """(factor shapes missing from ``shapes``, dense shapes in excess of the model's own dense
    layers: a factorized layer multiplied back)."""
    keep, dense = expected_factor_shapes(model)
    missing = {s: n for s, n in keep.items() if shapes[s] < n}
    merged = {s: shapes[s] for s, n in dense.items() if shapes[s] > n and s not in keep}
    return missing, merged


def graph_weight_shapes(path: Path, fmt: str) -> Counter:
    """Shapes of the weights stored in the exported file (ONNX initializers, or the program's state)."""
    if fmt == "onnx":
        import onnx

        graph = onnx.load(str(path)).graph
        return Counter(_key(t.dims) for t in graph.initializer)
    return weight_shapes(torch.export.load(str(path)).state_dict.values())


def weight_shapes(tensors) -> Counter:
    """How many of ``tensors`` have each shape, up to transposition."""
    return Counter(_key(t.shape) for t in tensors)


def runner(path: Path, fmt: str, threads: int | None = None, write_optimized: bool = True):
    """A function ``uint8 images [N, 32, 32, 3] (numpy) -> logits (numpy)`` running the file; for
    ONNX, ONNX Runtime's CPU provider with its default (full) graph optimizations, the graph it
    actually runs written beside the file as ``*.ort-optimized.onnx``, and ``threads`` intra-op
    threads (None: ONNX Runtime's default); ``write_optimized=False`` writes nothing."""
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        if write_optimized:
            options.optimized_model_filepath = str(optimized_path(path))
        # The optimized graph is written to be inspected, not shipped: ORT warns on every save
        # that it may hold hardware-specific nodes, which is expected here.
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
        # Worker threads that spin after a call would steal the cores from the next call, which in
        # interleaved timing is another model's: they sleep instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(["logits"], {"images": x})[0]
    module = torch.export.load(str(path)).module()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()
    return run


def optimized_path(path: Path) -> Path:
    return path.with_name(path.stem + ".ort-optimized.onnx")


def check_exported_outputs(model: nn.Module, path: str | Path, fmt: str, inputs: torch.Tensor) -> dict[str, Any]:
    """For any model and inputs: the file keeps every factor (``factor_check``, and for ONNX the
    graph ONNX Runtime runs after its optimizations) and its outputs on ``inputs`` match eager's;
    a dict of the checks, raising ``AssertionError`` naming the first that fails."""
    path = Path(path)
    run = runner(path, fmt)  # writes ONNX Runtime's optimized graph, read below
    missing, merged = factor_check(graph_weight_shapes(path, fmt), model)
    if fmt == "onnx":
        opt_missing, opt_merged = factor_check(graph_weight_shapes(optimized_path(path), fmt), model)
        missing, merged = {**missing, **opt_missing}, {**merged, **opt_merged}
    got = run(inputs.cpu().numpy())
    with torch.inference_mode():
        want = model.eval().cpu()(inputs.cpu()).numpy()
    err, scale = float(np.abs(got - want).max()), float(np.abs(want).max())
    out = {"format": fmt, "file": str(path), "file_bytes": path.stat().st_size, "factor_shapes_kept": not missing,
           "missing_factor_shapes": [list(s) for s in missing], "dense_shapes_present": [list(s) for s in merged],
           "max_abs_output_diff": err, "max_abs_output": scale,
           # relative to the outputs' own size: a model of yours may output anything from 1e-6 to 1e6
           "outputs_within_tolerance": bool(err <= OUTPUT_RTOL * scale + np.finfo(np.float32).tiny)}
    assert not missing and not merged, f"low-rank factors lost in {path}: missing {missing}, dense {merged}"
    assert out["outputs_within_tolerance"], (f"{path}: outputs differ from eager by up to {err:.2e}, over "
                                             f"{OUTPUT_RTOL:g} of the largest output ({scale:.2e})")
    return out


def check_export(model: nn.Module, path: str | Path, fmt: str, images: np.ndarray, labels: np.ndarray
                 ) -> dict[str, Any]:
    """The checks of the module doc, as a dict; raises ``AssertionError`` naming the first that fails."""
    path = Path(path)
    missing, merged = factor_check(graph_weight_shapes(path, fmt), model)
    run = runner(path, fmt)
    if fmt == "onnx":  # the graph ONNX Runtime runs after its optimizations, written by runner()
        opt_missing, opt_merged = factor_check(graph_weight_shapes(optimized_path(path), fmt), model)
        missing, merged = {**missing, **opt_missing}, {**merged, **opt_merged}
    got = np.concatenate([run(images[i: i + EVAL_BATCH]) for i in range(0, len(images), EVAL_BATCH)])
    with torch.inference_mode():
        want = predict(model.eval(), torch.from_numpy(images)).numpy()
    err = np.abs(got - want)
    out = {
        "format": fmt, "file": str(path), "file_bytes": path.stat().st_size, "n_images": int(len(images)),
        "factor_shapes_kept": not missing, "missing_factor_shapes": [list(s) for s in missing],
        "dense_shapes_present": [list(s) for s in merged],
        "max_abs_logit_diff": float(err.max()),
        "logits_within_tolerance": bool(np.all(err <= LOGITS_ATOL + LOGITS_RTOL * np.abs(want))),
        "accuracy_exported": float((got.argmax(1) == labels).mean()),
        "accuracy_eager": float((want.argmax(1) == labels).mean()),
        "tolerance": {"atol": LOGITS_ATOL, "rtol": LOGITS_RTOL},
    }
    assert not missing and not merged, f"low-rank factors lost in {path}: missing {missing}, dense {merged}"
    assert out["logits_within_tolerance"], f"{path}: logits differ from eager by up to {out['max_abs_logit_diff']:.2e}"
    assert out["accuracy_exported"] == out["accuracy_eager"], (
        f"{path}: accuracy {out['accuracy_exported']:.4%} against eager's {out['accuracy_eager']:.4%}")
    return out
