"""The runtime matrix runs each model in each runtime, scores it, and compares within a runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import learnable_images
from tests.deploy.nets import SmallNet
from torch_impl.deploy.int8 import as_torchao_int8, dequantized
from torch_impl.deploy.report import matrix_report, runtime_plot, write_matrix
from torch_impl.deploy.runtimes import AA_NAME, RUNTIMES, runtime_matrix
from torch_impl.factorize import compress_model, dynamic_int8
from torch_impl.measure.latency import TimingProtocol

pytest.importorskip("onnxruntime", reason="the deploy extra (pip install -e '.[deploy]') is not installed")
SAME_FUNCTION_ACC = 0.0  # one model's test accuracy in every runtime: fp32 round-off flips no class here
# Either int8 path against fp32 on SmallNet's logits (|logit| up to 1.2): measured at most
# 0.016 (torch.ao) and 0.021 (torchao: its weights round twice, see torch_impl/deploy/int8.py) over
# three image seeds.
INT8_VS_FP32_ATOL = 0.05


@pytest.mark.slow
def test_every_model_in_every_runtime_it_can_run(tmp_path: Path) -> None:
    images, labels = learnable_images(4, seed=3)
    dense = SmallNet().eval()
    models = {"dense": dense, "low-rank": compress_model(dense, rank_fraction=0.25)[0],
              "int8": dynamic_int8(dense)}
    rows, timing = runtime_matrix(models, images, labels, tmp_path / "onnx", [len(labels), 1], progress=False,
                                  protocol=TimingProtocol(min_rounds=3, max_rounds=3))
    got = {(r["model"], r["runtime"]) for r in rows}
    assert got == ({(m, rt) for m in ("dense", "low-rank") for rt in RUNTIMES}
                   | {("int8", "eager"), ("int8", "compile"), (AA_NAME, "eager")})
    assert {(s["model"], s["runtime"]) for s in timing["skipped"]} == {("int8", "onnxruntime")}
    assert next(r for r in rows if r["model"] == "int8" and r["runtime"] == "compile")["int8_path"] == "torchao"
    for r in rows:
        b = len(labels)
        assert r["latency_us_b1"] > 0 and r[f"ratio_lo_b{b}"] <= r[f"ratio_b{b}"] <= r[f"ratio_hi_b{b}"]
        if r["model"] == "dense":
            assert r[f"ratio_b{b}"] == 1.0  # the reference of its own runtime
    for r in rows:  # each runtime against eager for the same model, from the same rounds
        if r["runtime"] == "eager":
            assert "vs_eager_b1" not in r
        else:
            assert r["vs_eager_lo_b1"] <= r["vs_eager_b1"] <= r["vs_eager_hi_b1"]
    for name in ("dense", "low-rank"):
        accs = [r["test_acc"] for r in rows if r["model"] == name]
        assert max(accs) - min(accs) <= SAME_FUNCTION_ACC, (name, accs)
    low_ort = next(r for r in rows if r["model"] == "low-rank" and r["runtime"] == "onnxruntime")
    assert low_ort["factor_shapes_kept"] and low_ort["max_abs_logit_diff"] < 1e-4
    assert all(r["graph_breaks"] == 0 for r in rows if r["runtime"] == "compile")
    meta = {"n_test": len(labels), "timing": timing, "provenance": {"command": "test", "git_commit": "abc",
                                                                     "device": "cpu", "torch_threads": 2}}
    write_matrix(rows, tmp_path, meta)
    plot = runtime_plot(rows, tmp_path / "runtimes.png", [len(labels), 1])
    text = matrix_report(rows, [len(labels), 1], meta, plot)
    assert all(f"**{rt}**" in text for rt in RUNTIMES) and "int8 does not run in onnxruntime" in text
    assert "**int8 paths** (int8)" in text and f"A/A control ({AA_NAME}, eager)" in text
    assert np.isfinite((tmp_path / "runtimes.png").stat().st_size)


def test_torchao_int8_is_the_same_int8_model() -> None:
    dense = SmallNet().eval()
    ao = dynamic_int8(dense)
    back = dequantized(ao)
    for q, lin in zip(ao.classifier[::2], back.classifier[::2]):  # the exact int8 grid values, now fp32
        assert isinstance(lin, nn.Linear) and torch.equal(lin.weight, q.weight().dequantize())
        assert torch.equal(lin.bias, q.bias())
    images = torch.from_numpy(learnable_images(2, seed=5)[0])
    tao = as_torchao_int8(ao)
    assert type(tao.classifier[0].weight).__name__ == "Int8Tensor"
    with torch.inference_mode():
        fp32, errs = dense(images), {}
        for name, m in (("torch.ao", ao), ("torchao", tao)):
            errs[name] = (m(images) - fp32).abs().max().item()
    assert all(0 < e <= INT8_VS_FP32_ATOL for e in errs.values()), errs  # quantized, and as close as torch.ao
    with pytest.raises(ValueError, match="expects a model with torch.ao dynamic int8"):
        as_torchao_int8(dense)
