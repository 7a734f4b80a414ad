"""One layer in a target runtime and precision, for the latency table the rank rule reads.

The time-budget rank rule (``measure.latency_table``) spends seconds, so the seconds must be
the target's: a factor pair that pays off in fp32 eager may not in int8 on ONNX Runtime, where
the dense layer is already 3-4x cheaper. ``layer_runner(runtime, precision, ...)`` returns the
table's ``runner``: given a layer (``nn.Linear``, or a factor pair as ``nn.Sequential``) and its
float32 input ``[N, in]``, a call running it the way ``deploy/combos.py`` runs whole models:

  eager     the layer as torch runs it (bf16: autocast; int8-dynamic: ``factorize.dynamic_int8``)
  compile   ``torch.compile`` of the same (int8-dynamic: torchao's path)
  onnxruntime, openvino
            the layer exported to ONNX (input ``[N, in]``), quantized by ``deploy/precision.py``
            for int8 (static ranges calibrated on the input itself: only the time is used),
            then run by the runtime

Static int8 and its ONNX files need a working directory, ``work_dir``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from torch_impl.deploy.combos import TORCH_RUNTIMES, check_runtime
from torch_impl.deploy.export import export_model, runner
from torch_impl.deploy.int8 import torchao_int8
from torch_impl.deploy.openvino_rt import compile_openvino
from torch_impl.deploy.precision import Unsupported, autocast, check_precision, quantize_onnx
from torch_impl.factorize import dynamic_int8
from torch_impl.measure.latency_table import LayerRunner


def _torch_layer(layer: nn.Module, precision: str, runtime: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if precision == "int8-static":
        raise Unsupported("static int8 is built as an ONNX file: time it in onnxruntime or openvino")
    if precision == "int8-dynamic":
        layer = dynamic_int8(layer) if runtime == "eager" else torchao_int8(layer)
    return torch.compile(layer, dynamic=False) if runtime == "compile" else layer


def layer_runner(runtime: str, precision: str, work_dir: Path, threads: int | None = None) -> LayerRunner:
    """The ``runner`` for ``latency_table.measure`` in ``runtime`` and ``precision``."""
    check_runtime(runtime)
    check_precision(precision)
    if runtime == "onnxruntime" and precision == "bf16":
        raise Unsupported("ONNX Runtime's CPU provider has no bf16 kernels for matmuls")
    threads = threads or torch.get_num_threads()
    count = itertools.count()

    def run_layer(layer: nn.Module, x: torch.Tensor) -> Callable[[], object]:
        if runtime in TORCH_RUNTIMES:
            fn = _torch_layer(layer, precision, runtime)

            def call() -> object:
                with torch.inference_mode(), autocast(precision):
                    return fn(x)
            call()  # compiles, quantizes activations' code paths once
            return call
        work_dir.mkdir(parents=True, exist_ok=True)
        path = export_model(layer, work_dir / f"layer{next(count)}.fp32.onnx", "onnx", example=x[:2])
        data = x.contiguous().numpy()
        if precision.startswith("int8"):
            path = quantize_onnx(path, precision, path.with_name(path.stem + f".{precision}.onnx"), data[:64])
        if runtime == "onnxruntime":  # the whole batch in one call, as the table times torch's
            session = runner(path, "onnx", threads=threads, write_optimized=False)
            return lambda: session(data)
        request = compile_openvino(path, precision, threads)[0].create_infer_request()
        return lambda: request.infer({0: data})
    return run_layer
