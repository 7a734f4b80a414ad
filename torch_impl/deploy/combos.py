"""One model in one precision in one runtime: built, run, and kept in the form that runs it.

    runtime       fp32   bf16                  int8-dynamic          int8-static
    eager         yes    autocast              torch.ao              no (*)
    compile       yes    autocast              torchao               no (*)
    onnxruntime   yes    no (no CPU kernels)   quantize_dynamic      quantize_static, QDQ
    openvino      yes    plugin hint (**)      ORT's dynamic file    ORT's QDQ file

(*) static int8 with convolutions is built as an ONNX file (``deploy/precision.py``), which two
runtimes run; torch's own static int8 (torchao's PT2E flow) is not built here.
(**) refused, with the reason, on a CPU without bf16 instructions (``deploy/openvino_rt.py``).

Every combination is a ``Predict``: uint8 images ``[N, 32, 32, 3]`` (numpy) -> logits ``[N, 10]``
(numpy float32), so one scorer and one timer treat all of them alike. Its saved form
(``deploy/bundle.py``) is what it was built from: for the torch runtimes, the fp32 model (the
precision is applied again at load, deterministically); for ONNX Runtime the ONNX file; for
OpenVINO the IR.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torch_impl.deploy.export import export_model, runner
from torch_impl.deploy.int8 import torchao_int8
from torch_impl.deploy.openvino_rt import openvino_predict
from torch_impl.deploy.precision import Unsupported, autocast, check_precision, quantize_onnx
from torch_impl.deploy.runtimes import ORT_CHUNK, compiled_predict
from torch_impl.factorize import dynamic_int8
from torch_impl.inference import predict

RUNTIMES = ("eager", "compile", "onnxruntime", "openvino")
TORCH_RUNTIMES = ("eager", "compile")
Predict = Callable[[np.ndarray], np.ndarray]
STATIC_INT8_IN_TORCH = ("static int8 with convolutions is built as an ONNX file for ONNX Runtime and OpenVINO; "
                        "torch's own (torchao's PT2E flow) is not built here")


@dataclass
class Built:
    """A combination ready to run: its ``predict``, the fp32 module (torch runtimes) or the file
    it runs (ONNX Runtime, OpenVINO), and what the runtime reported (graph breaks, precision)."""

    predict: Predict
    module: nn.Module | None = None  # the torch module ``predict`` runs, relaid out between rounds
    source: nn.Module | None = None  # the fp32 model it came from (the torch runtimes' saved form)
    file: Path | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    return runtime


def torch_form(model: nn.Module, precision: str, runtime: str) -> nn.Module:
    """The module a torch runtime runs for ``precision`` (a copy; ``model`` is untouched)."""
    if precision == "int8-static":
        raise Unsupported(STATIC_INT8_IN_TORCH)
    if precision == "int8-dynamic":
        return dynamic_int8(model) if runtime == "eager" else torchao_int8(model)
    return copy.deepcopy(model).eval()


def torch_predict(model: nn.Module, precision: str, runtime: str) -> Built:
    """``model`` in ``precision`` in eager (``inference.predict``'s chunks) or ``torch.compile``."""
    module = torch_form(model, precision, runtime)
    notes: dict[str, Any] = {}
    if runtime == "eager":
        def inner(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return predict(module, torch.from_numpy(x)).float().numpy()
    else:
        with autocast(precision):
            inner, notes["graph_breaks"] = compiled_predict(module)

    def run(x: np.ndarray) -> np.ndarray:
        with autocast(precision):
            return np.asarray(inner(x), dtype=np.float32)
    return Built(run, module=module, source=model, notes=notes)


def ort_predict(path: Path, threads: int, write_optimized: bool = False) -> Predict:
    """ONNX Runtime on ``path`` in calls of ``ORT_CHUNK`` images (``deploy/runtimes.py``)."""
    run = runner(path, "onnx", threads=threads, write_optimized=write_optimized)
    return lambda x: np.concatenate([run(x[i: i + ORT_CHUNK]) for i in range(0, len(x), ORT_CHUNK)])


class OnnxFiles:
    """Each model's ONNX files, exported and quantized once, shared by ONNX Runtime and OpenVINO."""

    def __init__(self, work_dir: Path, calib: np.ndarray) -> None:
        self.work_dir, self.calib = work_dir, calib
        self._files: dict[tuple[str, str], Path] = {}

    def get(self, name: str, model: nn.Module, precision: str) -> Path:
        if (name, precision) not in self._files:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            fp32 = self._files.get((name, "fp32"))
            if fp32 is None:
                fp32 = self._files[name, "fp32"] = export_model(model, self.work_dir / f"{name}.fp32.onnx", "onnx")
            if precision != "fp32":
                out = self.work_dir / f"{name}.{precision}.onnx"
                self._files[name, precision] = quantize_onnx(fp32, precision, out, self.calib)
        return self._files[name, precision]


def build(name: str, model: nn.Module, precision: str, runtime: str, files: OnnxFiles, threads: int) -> Built:
    """``model`` (saved as ``name``) in ``precision`` and ``runtime``; raises ``Unsupported`` with
    the reason where this tool has no such form."""
    check_precision(precision)
    if check_runtime(runtime) in TORCH_RUNTIMES:
        return torch_predict(model, precision, runtime)
    if runtime == "onnxruntime":
        if precision == "bf16":
            raise Unsupported("ONNX Runtime's CPU provider has no bf16 kernels for convolutions or matmuls")
        path = files.get(name, model, precision)
        return Built(ort_predict(path, threads), source=model, file=path)
    path = files.get(name, model, "fp32" if precision == "bf16" else precision)
    fn, info = openvino_predict(path, precision, threads)
    return Built(fn, source=model, file=path, notes=info)
