"""Layers timed in the runtime and precision they will run in, for the measured-latency rank rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from torch_impl.deploy.layer_runners import layer_runner
from torch_impl.deploy.precision import Unsupported
from torch_impl.measure.latency_table import measure, rank_grid

pytest.importorskip("onnxruntime", reason="the deploy extra (pip install -e '.[deploy]') is not installed")
pytest.importorskip("openvino", reason="the deploy extra (pip install -e '.[deploy]') is not installed")
FP32_ATOL = 1e-5  # a 32x24 layer in another runtime's fp32 kernels: round-off
# int8 weights and activations on a random layer and 16 random rows, as a share of the largest
# output (measured up to 0.33 for static int8 with 7-bit weights): a check that the runtime computes
# this layer, not of int8's accuracy (tests/deploy/test_combos.py)
INT8_REL_ATOL = 0.5


def _array(out) -> np.ndarray:
    """A runner call's output: a tensor (torch), an array (ONNX Runtime) or OpenVINO's result dict."""
    if isinstance(out, torch.Tensor):
        return out.float().numpy()
    return np.asarray(out if isinstance(out, np.ndarray) else out[0])


@pytest.mark.parametrize("runtime, precision", [("onnxruntime", "int8-static"), ("openvino", "fp32"),
                                                ("eager", "int8-dynamic"), ("onnxruntime", "int8-dynamic")])
def test_a_layer_runs_in_the_target_runtime_and_precision(tmp_path: Path, runtime: str, precision: str) -> None:
    torch.manual_seed(0)
    layer, x = nn.Linear(32, 24).eval(), torch.randn(16, 32)
    got = _array(layer_runner(runtime, precision, tmp_path, threads=1)(layer, x)())
    with torch.inference_mode():
        ref = layer(x).numpy()
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err <= (FP32_ATOL if precision == "fp32" else INT8_REL_ATOL), err


def test_the_latency_table_fills_from_a_runtimes_runner(tmp_path: Path) -> None:
    run = layer_runner("onnxruntime", "int8-dynamic", tmp_path, threads=1)
    t = measure(nn.Sequential(nn.Linear(32, 24)), batch_size=16, multiple=8, min_run_s=0.01, runner=run,
                runtime="onnxruntime", precision="int8-dynamic")
    assert sorted(t.factorized[(32, 24)]) == rank_grid(32, 24, 8) and t.dense[(32, 24)] > 0
    assert all(v > 0 for v in t.factorized[(32, 24)].values())
    assert (t.runtime, t.precision) == ("onnxruntime", "int8-dynamic")


def test_what_a_runtime_cannot_run_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(Unsupported, match="no bf16 kernels"):
        layer_runner("onnxruntime", "bf16", tmp_path)
    with pytest.raises(Unsupported, match="static int8 is built as an ONNX file"):
        layer_runner("eager", "int8-static", tmp_path)(nn.Linear(4, 4), torch.zeros(2, 4))
