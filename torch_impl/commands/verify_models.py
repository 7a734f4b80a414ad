"""Load saved models in this (fresh) process and check they predict what they predicted when saved.

    python scripts/verify_models.py runs/compare/models/*
    python scripts/verify_models.py runs/deploy/deployed/*

A model directory written by scripts/compare_methods.py (manifest.json), or a deployable
combination written by scripts/deploy_frontier.py (deploy.json: a model in a precision and a
runtime), holds the fingerprint (SHA-256) of its logits on the test images it was scored on; this
loads it from its manifest alone, predicts the same images again, and compares fingerprints and
accuracy. On the machine and thread count that saved it, the fingerprints must be equal
(bit-identical predictions); on another CPU the last bits may differ, and then the accuracy is
what compares.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from torch_impl.artifact import load_compressed, logits_fingerprint
from torch_impl.cli.flags import add_data_args, fail, make_parser
from torch_impl.cli.process import flush_denormals
from torch_impl.data import CIFAR10DataModule, DataError
from torch_impl.inference import accuracy


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = make_parser(__doc__)
    p.add_argument("models", nargs="+", help="saved model directories (manifest.json or deploy.json inside)")
    add_data_args(p, test_limit=False)
    return p.parse_args(argv)


def _loader(directory: Path):
    """(kind, check) where ``check(images, labels) -> (fingerprint, accuracy)``, and the saved metrics."""
    if (directory / "deploy.json").is_file():
        from torch_impl.deploy.bundle import load_deployment, logits_sha256

        predict, manifest = load_deployment(directory)

        def check(images: torch.Tensor, labels: torch.Tensor) -> tuple[str, float]:
            logits = predict(images.numpy())
            return logits_sha256(logits), float((logits.argmax(1) == labels.numpy()).mean())
        return f"{manifest['precision']} on {manifest['runtime']}", check, manifest["metrics"]
    model, manifest = load_compressed(directory)
    return "model", lambda x, y: (logits_fingerprint(model, x), accuracy(model, x, y)), manifest["metrics"]


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    flush_denormals()  # as when the models were scored: see torch_impl/cli/process.py
    try:
        loaded = [(Path(d), *_loader(Path(d))) for d in args.models]
        sizes = {metrics.get("n_test") for *_, metrics in loaded}
        if None in sizes or len(sizes) != 1:
            raise ValueError("every model must carry test_logits_sha256 and n_test (saved by compare_methods.py or "
                             "deploy_frontier.py) on the same number of test images")
        n_test = sizes.pop()
        dm = CIFAR10DataModule(args.data_dir, args.cache_dir, test_limit=n_test if n_test < 10_000 else None)
        images, labels = (torch.from_numpy(np.ascontiguousarray(a)) for a in dm.numpy_splits()["test"])
    except (DataError, ValueError, FileNotFoundError) as err:
        fail(err)
    out = []
    for path, kind, check, saved in loaded:
        fingerprint, acc = check(images, labels)
        same = fingerprint == saved["test_logits_sha256"]
        out.append({"model": str(path), "identical": same, "test_acc": acc, "saved_test_acc": saved.get("test_acc")})
        print(f"{'identical' if same else 'DIFFERENT'} logits on {n_test} test images; accuracy {100 * acc:.2f}% "
              f"(saved {100 * saved.get('test_acc', float('nan')):.2f}%), {kind}: {path}")
    return out


def exit_status(rows: list[dict]) -> int:
    """1 when any model's logits differ from those it was saved with (the script's and
    ``svd-compress verify``'s status)."""
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(exit_status(main()))
