"""A saved combination reloads, in the runtime and precision it was measured in, to the same logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import learnable_images
from torch_impl.deploy.bundle import MANIFEST, load_deployment, logits_sha256, read_deployment, save_deployment
from torch_impl.deploy.combos import OnnxFiles, build
from torch_impl.deploy.precision import calibration_images
from torch_impl.factorize import compress_model
from torch_impl.model import SMALL_WIDTHS, build_model

pytest.importorskip("onnxruntime", reason="the deploy extra (pip install -e '.[deploy]') is not installed")
pytest.importorskip("openvino", reason="the deploy extra (pip install -e '.[deploy]') is not installed")


@pytest.fixture(scope="module")
def low():
    """The project's network (self-describing on disk, as the torch runtimes' saved form needs), small."""
    return compress_model(build_model(0, widths=SMALL_WIDTHS).eval(), rank_fraction=0.25)[0]


@pytest.mark.parametrize("precision, runtime", [("int8-dynamic", "eager"), ("int8-static", "onnxruntime"),
                                                ("fp32", "openvino"), ("int8-static", "openvino")])
def test_a_saved_combination_reloads_to_identical_logits(low, tmp_path: Path, precision: str, runtime: str) -> None:
    images, _ = learnable_images(2, seed=4)
    files = OnnxFiles(tmp_path / "onnx", calibration_images(learnable_images(8, seed=1)[0], 0, 32))
    built = build("low", low, precision, runtime, files, threads=1)
    logits = built.predict(images)
    save_deployment(tmp_path / "d", built, runtime, precision, 1, {"test_acc": 0.5}, {"key": "low"})
    predict, manifest = load_deployment(tmp_path / "d")
    assert (manifest["runtime"], manifest["precision"]) == (runtime, precision)
    assert logits_sha256(predict(images)) == logits_sha256(logits)  # same machine, same threads: same bits
    kept = {p.name for p in (tmp_path / "d").iterdir()}
    assert manifest["file"] in kept and not any(n.endswith("ort-optimized.onnx") for n in kept)


def _write(directory: Path, **changes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.onnx").write_bytes(b"")
    manifest = {"format": "svd-compress deployment", "version": 1, "runtime": "onnxruntime", "precision": "fp32",
                "threads": 2, "file": "model.onnx", "metrics": {}, **changes}
    (directory / MANIFEST).write_text(json.dumps(manifest))
    return directory


@pytest.mark.parametrize("changes, message", [
    ({"format": "other"}, "is not a version-1 svd-compress deployment manifest"),
    ({"runtime": "tensorrt"}, "runtime must be one of eager, compile, onnxruntime, openvino"),
    ({"precision": "fp8"}, "precision must be one of"),
    ({"runtime": "openvino", "file": "model.xml"}, "lacks model.xml, which a openvino deployment runs"),
    ({"threads": -1}, "threads must be a positive integer"),
])
def test_a_bad_manifest_is_refused_in_one_line_before_loading(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_deployment(_write(tmp_path / "d", **changes))


def test_a_directory_without_a_manifest_or_with_broken_json_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no deploy.json"):
        read_deployment(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        read_deployment(tmp_path)
