"""OpenVINO's CPU plugin as a runtime: an ONNX file (or its IR) compiled for one precision.

OpenVINO reads the ONNX files ``deploy/export.py`` and ``deploy/precision.py`` write: fp32, and
static int8 in the QDQ format, which its CPU plugin runs with int8 kernels. bf16 is not a file
but a compile option, ``INFERENCE_PRECISION_HINT``; the plugin falls back to f32 on a CPU without
bf16 instructions, so the precision it actually chose is read back, and a bf16 request that ran
in f32 is refused (it would be the fp32 row under another name). The hint is set to f32
explicitly for every other precision: on CPUs with AMX the plugin's default is bf16.

Threads: ``INFERENCE_NUM_THREADS`` as many as torch uses; ``PERFORMANCE_HINT`` LATENCY (one
stream: a call uses every thread, as torch's and ONNX Runtime's do).

Shapes: images ``[N, 32, 32, 3]`` uint8 -> logits ``[N, 10]`` float32, N dynamic; a call runs in
chunks of ``CHUNK`` images (the plugin keeps the largest call's activations allocated).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from torch_impl.deploy.precision import Unsupported

CHUNK = 1000
HINT = {"fp32": "f32", "bf16": "bf16", "int8-dynamic": "f32", "int8-static": "f32"}
Predict = Callable[[np.ndarray], np.ndarray]


def _ov():
    try:
        import openvino
    except ImportError as err:
        raise ValueError("openvino is not installed: pip install -e '.[deploy]'") from err
    return openvino


def compile_openvino(path: Path, precision: str, threads: int) -> tuple[Any, dict[str, Any]]:
    """The compiled model of ``path`` (.onnx or .xml) and its settings as the plugin reports them."""
    ov = _ov()
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": HINT[precision]}
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    actual = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    if precision == "bf16" and actual != "bf16":
        raise Unsupported(f"OpenVINO's CPU plugin runs bf16 requests in {actual} on this CPU (no bf16 instructions)")
    return compiled, {"openvino": ov.__version__, "inference_precision": actual, "threads": threads}


def openvino_predict(path: Path, precision: str, threads: int) -> tuple[Predict, dict[str, Any]]:
    """``images -> logits`` through OpenVINO, and the plugin's settings."""
    compiled, info = compile_openvino(path, precision, threads)
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        return np.concatenate([request.infer({0: x[i: i + CHUNK]})[0].copy() for i in range(0, len(x), CHUNK)])
    return run, info


def save_ir(onnx_path: Path, xml_path: Path) -> Path:
    """``onnx_path`` as OpenVINO IR (``.xml`` + ``.bin``), weights kept in their own types."""
    ov = _ov()
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.Core().read_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)
    return xml_path
