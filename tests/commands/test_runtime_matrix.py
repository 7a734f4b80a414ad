"""``svd-compress runtimes`` (scripts/runtime_matrix.py) end to end on make run's model and a saved
low-rank and int8 model: each in every runtime it can run, scored, and compared within a runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.commands.conftest import SmokeRun, real_data_env
from torch_impl.artifact import save_compressed
from torch_impl.checkpoint import load_model
from torch_impl.commands.main import run as svd_compress
from torch_impl.deploy.runtimes import AA_NAME, RUNTIMES
from torch_impl.factorize import dynamic_int8

pytest.importorskip("onnxruntime", reason="the deploy extra (pip install -e '.[deploy]') is not installed")
pytestmark = pytest.mark.slow
# One model's test accuracy in every runtime: fp32 round-off may flip one near-tied image of the
# 300 (the smoke run's network is trained for 6 steps, so its logits are close together).
SAME_FUNCTION_ACC = 1 / 300 + 1e-9
ORT_LOGIT_TOL = 1e-4  # ONNX Runtime against eager on the same fp32 low-rank model


def test_every_model_in_every_runtime_it_can_run(smoke_run: SmokeRun, tmp_path: Path) -> None:
    dense, _ = load_model(smoke_run.checkpoint)
    int8_dir = tmp_path / "int8"
    save_compressed(int8_dir, dynamic_int8(dense), method={"method": "int8", "family": "int8"})
    low_dir = smoke_run.models()[0]
    low = json.loads((low_dir / "manifest.json").read_text())["method"]["method"]
    out = tmp_path / "runtimes"
    _, rows = svd_compress(["runtimes", "--checkpoint", str(smoke_run.checkpoint), "--models", str(low_dir),
                            str(int8_dir), "--out-dir", str(out), "--data-dir", real_data_env()["CIFAR10_DIR"],
                            "--test-limit", "300", "--min-rounds", "3", "--max-rounds", "3", "--queries", "10",
                            "--no-progress-bar"])
    for name in ("runtimes.json", "runtimes.csv", "RUNTIMES.md", "runtimes.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "runtimes.json").read_text())
    assert len(saved["rows"]) == len(rows)
    every = {(m, rt) for m in ("dense", low) for rt in RUNTIMES}
    assert {(r["model"], r["runtime"]) for r in rows} == every | {("int8", "eager"), ("int8", "compile"),
                                                                  (AA_NAME, "eager")}
    assert {(s["model"], s["runtime"]) for s in saved["timing"]["skipped"]} == {("int8", "onnxruntime")}
    assert next(r for r in rows if r["model"] == "int8" and r["runtime"] == "compile")["int8_path"] == "torchao"
    b = 300
    for r in rows:
        assert r["latency_us_b1"] > 0 and r[f"ratio_lo_b{b}"] <= r[f"ratio_b{b}"] <= r[f"ratio_hi_b{b}"]
        if r["model"] == "dense":
            assert r[f"ratio_b{b}"] == 1.0  # the reference of its own runtime
        if r["runtime"] == "eager":  # each other runtime against eager for the same model, same rounds
            assert "vs_eager_b1" not in r
        else:
            assert r["vs_eager_lo_b1"] <= r["vs_eager_b1"] <= r["vs_eager_hi_b1"]
    for name in ("dense", low):
        accs = [r["test_acc"] for r in rows if r["model"] == name]
        assert max(accs) - min(accs) <= SAME_FUNCTION_ACC, (name, accs)
    low_ort = next(r for r in rows if r["model"] == low and r["runtime"] == "onnxruntime")
    assert low_ort["factor_shapes_kept"] and low_ort["max_abs_logit_diff"] < ORT_LOGIT_TOL
    assert all(r["graph_breaks"] == 0 for r in rows if r["runtime"] == "compile")
    text = (out / "RUNTIMES.md").read_text()
    assert all(f"**{rt}**" in text for rt in RUNTIMES) and "int8 does not run in onnxruntime" in text
    assert "**int8 paths** (int8)" in text and f"A/A control ({AA_NAME}, eager)" in text
