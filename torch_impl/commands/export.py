"""Export a dense or compressed model to ONNX or torch.export, then check the file on real test images.

    python scripts/export.py runs/compare/models/<NN-name> --format onnx   # a model recommended.json names
    python scripts/export.py runs/train/model.pt --format torch-export --test-limit 2000

MODEL is a model directory saved by scripts/compare_methods.py (safetensors + manifest.json),
or a dense model.pt / Lightning .ckpt from scripts/train.py. Writes the exported file
(default: model.onnx / model.pt2 in the model's directory) and <file>.check.json: whether
the low-rank factors kept their shapes in the graph, the largest logit difference from torch
eager, and both accuracies over the test images (torch_impl/deploy/export.py). ONNX needs the
deploy extra: pip install -e ".[deploy]".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from torch_impl.artifact import MANIFEST, load_compressed
from torch_impl.checkpoint import load_model
from torch_impl.cli.flags import add_data_args, fail, make_parser
from torch_impl.cli.process import flush_denormals
from torch_impl.data import CIFAR10DataModule, DataError
from torch_impl.deploy.export import FORMATS, SUFFIX, check_export, check_exportable, export_model
from torch_impl.files import write_json
from torch_impl.provenance import provenance


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = make_parser(__doc__)
    p.add_argument("model", help="a saved model directory (manifest.json inside), or a dense model.pt / .ckpt")
    p.add_argument("--format", required=True, choices=FORMATS, help="onnx or torch-export")
    p.add_argument("--out", help="the exported file (default: model.onnx / model.pt2 beside the model)")
    add_data_args(p)
    return p.parse_args(argv)


def load_any(path: Path) -> torch.nn.Module:
    if path.is_dir() or path.name == MANIFEST:
        return load_compressed(path)[0]
    return load_model(path)[0]


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    flush_denormals()  # before any parallel torch op: see torch_impl/cli/process.py
    src = Path(args.model)
    out = Path(args.out) if args.out else (src if src.is_dir() else src.parent) / f"model{SUFFIX[args.format]}"
    try:
        if not src.exists():
            raise FileNotFoundError(f"no model at {src}: pass a saved model directory or a model.pt")
        if args.format == "onnx":
            missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if not _importable(m)]
            if missing:
                raise ValueError(f"--format onnx needs {', '.join(missing)}: pip install -e \".[deploy]\"")
        model = load_any(src)
        check_exportable(model)
        dm = CIFAR10DataModule(args.data_dir, args.cache_dir, test_limit=args.test_limit)
        images, labels = dm.numpy_splits()["test"]
    except (DataError, ValueError, FileNotFoundError) as err:
        fail(err)
    export_model(model, out, args.format)
    try:
        report = check_export(model, out, args.format, images, labels)
    except AssertionError as err:
        fail(f"the exported file failed its check: {err}")
    report = {**report, "model": str(src), "provenance": provenance()}
    check_path = write_json(out.with_name(out.name + ".check.json"), report)
    print(f"{args.format}: {out} ({report['file_bytes'] / 1e6:.1f} MB); low-rank factor shapes kept: "
          f"{report['factor_shapes_kept']}; max |logit - eager| {report['max_abs_logit_diff']:.2e} on "
          f"{report['n_images']} test images; accuracy {100 * report['accuracy_exported']:.2f}% "
          f"(eager {100 * report['accuracy_eager']:.2f}%)\ncheck: {check_path}")
    return report


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    main()
