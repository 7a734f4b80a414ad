"""Precisions: ONNX files quantized by ONNX Runtime's tools stay close to fp32 and hold int8 inside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.conftest import learnable_images
from tests.deploy.nets import SmallNet
from torch_impl.deploy.combos import ort_predict
from torch_impl.deploy.export import export_model
from torch_impl.deploy.precision import calibration_images, check_precision, quantize_onnx
from torch_impl.factorize import compress_model

pytest.importorskip("onnxruntime", reason="the deploy extra (pip install -e '.[deploy]') is not installed")
# int8 logits against fp32 on SmallNet (|logit| <= 0.25), as a share of the largest fp32 logit:
# measured 0.28 (static: weights and activations rounded) and 0.13 (dynamic).
INT8_REL_ATOL = 0.4
MIN_INT8_AGREEMENT = 0.85  # share of images whose top-1 class int8 keeps (measured 0.93-1.0)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("onnx")
    train, _ = learnable_images(8, seed=1)
    low = compress_model(SmallNet().eval(), rank_fraction=0.25)[0]
    fp32 = export_model(low, out / "low.fp32.onnx", "onnx")
    calib = calibration_images(train, seed=0, n=32)
    return {"fp32": fp32, **{p: quantize_onnx(fp32, p, out / f"low.{p}.onnx", calib)
                             for p in ("int8-dynamic", "int8-static")}}


def _ops(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_static_int8_quantizes_convolutions_and_matmuls_in_qdq(files) -> None:
    ops = _ops(files["int8-static"])
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    graph = onnx.load(str(files["int8-static"])).graph
    conv = next(n for n in graph.node if n.op_type == "Conv")
    assert any(n.op_type == "DequantizeLinear" and n.output[0] == conv.input[1] for n in graph.node)  # int8 weight
    assert "DynamicQuantizeLinear" in _ops(files["int8-dynamic"])


def test_int8_files_predict_close_to_fp32(files) -> None:
    images, _ = learnable_images(4, seed=3)
    ref = ort_predict(files["fp32"], threads=1)(images)
    for precision in ("int8-dynamic", "int8-static"):
        got = ort_predict(files[precision], threads=1)(images)
        err = np.abs(got - ref).max() / np.abs(ref).max()
        assert 0 < err <= INT8_REL_ATOL, (precision, err)  # rounded, and not far
        assert (got.argmax(1) == ref.argmax(1)).mean() >= MIN_INT8_AGREEMENT


def test_calibration_images_are_a_seeded_draw_of_the_given_images() -> None:
    train = np.arange(100)[:, None] * np.ones((1, 3), dtype=np.int64)
    a, b = calibration_images(train, seed=0, n=10), calibration_images(train, seed=1, n=10)
    assert a.shape == (10, 3) and np.array_equal(a, calibration_images(train, seed=0, n=10))
    assert not np.array_equal(a, b) and set(a[:, 0]) <= set(range(100))


def test_unknown_precisions_are_refused_in_one_line(files, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, int8-dynamic, int8-static"):
        check_precision("int4")
    with pytest.raises(ValueError, match="static int8 needs calibration images"):
        quantize_onnx(files["fp32"], "int8-static", tmp_path / "x.onnx", calib=None)
