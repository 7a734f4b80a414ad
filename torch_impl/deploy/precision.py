"""The arithmetic a model runs in: fp32, bf16, and int8 (dynamic, or static with calibration).

Each precision is made with its runtime's own tool, never by hand:
  fp32          the model as trained
  bf16          eager and ``torch.compile``: ``torch.autocast("cpu", torch.bfloat16)`` around the
                call (convolutions and matmuls in bf16, the rest in fp32); OpenVINO: its
                ``INFERENCE_PRECISION_HINT`` (``deploy/openvino_rt.py``). ONNX Runtime's CPU
                provider has no bf16 kernels for convolutions or matmuls, so it has no bf16 row.
  int8-dynamic  int8 weights, activations quantized per call, linear layers only: torch.ao's
                ``quantize_dynamic`` in eager (``factorize.dynamic_int8``), torchao's
                ``Int8DynamicActivationInt8WeightConfig`` under ``torch.compile``
                (``deploy/int8.py``), ``onnxruntime.quantization.quantize_dynamic`` for the ONNX
                runtimes
  int8-static   int8 weights and activations, convolutions included, activation ranges
                calibrated on ``CALIB_IMAGES`` training images: ``onnxruntime.quantization.
                quantize_static`` in the QDQ format, which both ONNX Runtime and OpenVINO run
                with int8 kernels
Low-rank factors are quantized as the two linear layers they are.

Shapes: an ONNX file takes uint8 images ``[N, 32, 32, 3]`` and returns logits ``[N, 10]``
whatever its precision; quantization changes the weights' types inside, not the interface.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

PRECISIONS = ("fp32", "bf16", "int8-dynamic", "int8-static")
CALIB_IMAGES = 512  # training images whose activations set the static int8 ranges
CALIB_BATCH = 64
# 7-bit weights in static int8: x86 int8 kernels without VNNI sum u8 x s8 products in pairs in
# int16, which saturates with full-range weights. Measured on validation (AMD EPYC, no VNNI):
# dense -1.94 pp with 8-bit weights, -0.20 pp with 7; folded pools + 1M -1.10 and +0.08.
# Percentile or entropy calibration instead of MinMax moved neither by more than 0.5 pp.
REDUCE_RANGE = True


class Unsupported(Exception):
    """A precision or runtime this combination has no form in; the message says why."""


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def autocast(precision: str) -> contextlib.AbstractContextManager:
    """The context a torch call of ``precision`` runs under (bf16: CPU autocast)."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def calibration_images(train_images: np.ndarray, seed: int, n: int = CALIB_IMAGES) -> np.ndarray:
    """``n`` training images drawn with ``seed`` (never validation or test images)."""
    idx = np.random.default_rng(seed).permutation(len(train_images))[:n]
    return train_images[np.sort(idx)]


class _Reader:
    """ONNX Runtime's calibration protocol: ``get_next`` gives input feeds until None."""

    def __init__(self, images: np.ndarray, batch: int = CALIB_BATCH) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = iter(
            [{"images": images[i: i + batch]} for i in range(0, len(images), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantize_onnx(fp32_path: Path, precision: str, out_path: Path, calib: np.ndarray | None = None) -> Path:
    """``fp32_path`` (an fp32 ONNX file) quantized to ``precision`` at ``out_path`` with
    ``onnxruntime.quantization``: shape inference and graph clean-up first (its
    ``quant_pre_process``), then dynamic int8 of the matmuls, or static int8 (QDQ, per-channel
    7-bit weights, uint8 activations with MinMax ranges on ``calib``) of convolutions and matmuls."""
    try:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as err:
        raise ValueError("onnxruntime is not installed: pip install -e '.[deploy]'") from err
    pre = out_path.with_name(out_path.stem + ".pre.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant_pre_process(str(fp32_path), str(pre))
        if precision == "int8-dynamic":
            quantize_dynamic(str(pre), str(out_path), weight_type=QuantType.QInt8)
        elif precision == "int8-static":
            if calib is None or not len(calib):
                raise ValueError("static int8 needs calibration images")
            quantize_static(str(pre), str(out_path), _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            reduce_range=REDUCE_RANGE)
        else:
            raise ValueError(f"ONNX files are quantized to int8-dynamic or int8-static, not {precision!r}")
    pre.unlink(missing_ok=True)
    return out_path
