"""Every model x precision x runtime predicts what the fp32 model predicts, to its precision's rounding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import learnable_images
from tests.deploy.nets import SmallNet
from torch_impl.deploy.combos import OnnxFiles, build
from torch_impl.deploy.precision import Unsupported, calibration_images
from torch_impl.factorize import compress_model

pytest.importorskip("onnxruntime", reason="the deploy extra (pip install -e '.[deploy]') is not installed")
pytest.importorskip("openvino", reason="the deploy extra (pip install -e '.[deploy]') is not installed")
# Logits against fp32 eager, as a share of the largest (SmallNet's logits are small, |z| <= 0.25, so
# int8's absolute rounding is a large share): fp32 in another runtime is round-off; bf16 keeps 8 bits
# of mantissa; int8 rounds weights and activations (measured: <1e-6; 0.014; dynamic 0.03-0.13,
# static 0.28). And the top-1 class int8 keeps (measured 0.90-1.0 of the images).
REL_ATOL = {"fp32": 1e-4, "bf16": 0.05, "int8-dynamic": 0.25, "int8-static": 0.4}
MIN_AGREEMENT = 0.85


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    low = compress_model(SmallNet().eval(), rank_fraction=0.25)[0]
    images, _ = learnable_images(4, seed=3)
    with torch.inference_mode():
        ref = low(torch.from_numpy(images)).numpy()
    files = OnnxFiles(tmp_path_factory.mktemp("onnx"), calibration_images(learnable_images(8, seed=1)[0], 0, 32))
    return low, images, ref, files


def _check(setup, precision: str, runtime: str) -> None:
    low, images, ref, files = setup
    try:
        built = build("low", low, precision, runtime, files, threads=1)
    except Unsupported as why:
        # bf16 where the CPU has no bf16 instructions: refused, with the reason, never run as fp32
        assert precision == "bf16" and runtime == "openvino" and "no bf16" in str(why)
        return
    got = built.predict(images)
    assert got.shape == ref.shape and got.dtype == np.float32
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err <= REL_ATOL[precision], (precision, runtime, err)
    assert (got.argmax(1) == ref.argmax(1)).mean() >= MIN_AGREEMENT
    if precision.startswith("int8"):
        assert err > 0  # really quantized


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8-dynamic", "int8-static"])
@pytest.mark.parametrize("runtime", ["eager", "onnxruntime", "openvino"])
def test_each_form_predicts_like_fp32_eager(setup, precision: str, runtime: str) -> None:
    if (precision, runtime) in {("int8-static", "eager"), ("bf16", "onnxruntime")}:
        with pytest.raises(Unsupported, match="static int8 with convolutions is built as an ONNX file|no bf16 kernels"):
            build("low", setup[0], precision, runtime, setup[3], threads=1)
        return
    _check(setup, precision, runtime)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "int8-dynamic"])  # fp32: tests/deploy/test_runtimes.py
def test_each_compiled_form_predicts_like_fp32_eager(setup, precision: str) -> None:
    _check(setup, precision, "compile")


def test_unknown_runtimes_are_refused_in_one_line(setup, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="runtime must be one of eager, compile, onnxruntime, openvino"):
        build("low", setup[0], "fp32", "tensorrt", setup[3], threads=1)
