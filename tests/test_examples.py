"""Every script in examples/ runs as a user runs it, and prints what it promises."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


def test_compress_torchvision_factorizes_saves_loads_exports_and_times() -> None:
    pytest.importorskip("onnxruntime", reason="the deploy extra (pip install -e '.[deploy]') is not installed")
    done = subprocess.run([sys.executable, "examples/compress_torchvision.py"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "identical after save and load: True" in out
    assert "ONNX: factors kept True" in out
    assert "the original's time at batch 64" in out and "low-rank" in out
    assert "A/A" in out
