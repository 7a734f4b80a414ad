"""A deployable combination on disk: what runs it, and how, in one directory.

    <dir>/deploy.json     runtime, precision, threads, the files below, what was measured
    <dir>/model/          torch runtimes: the fp32 compressed-model directory (``artifact``);
                          the precision is applied again at load (autocast, or int8 quantization,
                          both deterministic from the fp32 weights)
    <dir>/model.onnx      ONNX Runtime: the file it runs (fp32, or int8 inside)
    <dir>/model.xml/.bin  OpenVINO: the IR it compiles (bf16 is a compile option in deploy.json)

``load_deployment`` checks deploy.json (known runtime and precision, its files present) before
reading any weights, then rebuilds the ``Predict`` with the same code the measurement used.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from torch_impl.artifact import load_compressed, save_compressed
from torch_impl.deploy.combos import TORCH_RUNTIMES, Built, Predict, check_runtime, ort_predict, torch_predict
from torch_impl.deploy.openvino_rt import openvino_predict, save_ir
from torch_impl.deploy.precision import check_precision
from torch_impl.files import write_json

FORMAT = "svd-compress deployment"
VERSION = 1
MANIFEST = "deploy.json"
FILES = {"torch": "model", "onnxruntime": "model.onnx", "openvino": "model.xml"}


def logits_sha256(logits: np.ndarray) -> str:
    """SHA-256 of float32 logits: equal on one machine and thread count means bit-identical."""
    return hashlib.sha256(np.ascontiguousarray(logits, dtype=np.float32).tobytes()).hexdigest()


def _file_key(runtime: str) -> str:
    return "torch" if runtime in TORCH_RUNTIMES else runtime


def save_deployment(directory: str | Path, built: Built, runtime: str, precision: str, threads: int,
                    metrics: dict[str, Any], method: dict[str, Any]) -> Path:
    """Writes ``built`` to ``directory`` in the form its runtime runs; returns deploy.json's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / FILES[_file_key(runtime)]
    if runtime in TORCH_RUNTIMES:
        save_compressed(target, built.source, method=method)
    elif runtime == "onnxruntime":
        shutil.copyfile(built.file, target)
    else:
        save_ir(built.file, target)
    manifest = {"format": FORMAT, "version": VERSION, "runtime": runtime, "precision": precision, "threads": threads,
                "file": target.name, "method": method, "metrics": metrics,
                "run": f'torch_impl.deploy.bundle.load_deployment("{directory}")  # -> images uint8 [N,32,32,3] '
                       "-> logits [N,10]"}
    return write_json(directory / MANIFEST, manifest)


def read_deployment(directory: str | Path) -> dict[str, Any]:
    """deploy.json, checked: its format, runtime, precision and file, or a one-line ValueError."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{directory} holds no {MANIFEST}: pass a directory written by scripts/deploy_frontier.py")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); write it again with scripts/deploy_frontier.py") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(f"{path} is not a version-{VERSION} {FORMAT} manifest")
    check_runtime(manifest.get("runtime"))
    check_precision(manifest.get("precision"))
    expected = FILES[_file_key(manifest["runtime"])]
    if manifest.get("file") != expected or not (Path(directory) / expected).exists():
        raise ValueError(f"{directory} lacks {expected}, which a {manifest['runtime']} deployment runs")
    threads = manifest.get("threads")
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"{path}: threads must be a positive integer, got {threads!r}")
    return manifest


def load_deployment(directory: str | Path, threads: int | None = None) -> tuple[Predict, dict[str, Any]]:
    """``(predict, manifest)`` for a saved combination. ``threads``: ONNX Runtime's and OpenVINO's
    (default: as measured, ``manifest["threads"]``); the torch runtimes use the process's own
    (``torch.set_num_threads``), which loading never changes."""
    manifest = read_deployment(directory)
    runtime, precision = manifest["runtime"], manifest["precision"]
    threads = threads or manifest["threads"]
    target = Path(directory) / manifest["file"]
    if runtime in TORCH_RUNTIMES:
        model, _ = load_compressed(target)
        return torch_predict(model, precision, runtime).predict, manifest
    if runtime == "onnxruntime":
        return ort_predict(target, threads), manifest
    return openvino_predict(target, precision, threads)[0], manifest
