"""Load saved models in this (fresh) process and check they predict what they predicted when saved.

    python scripts/verify_models.py runs/compare/models/*

Each model directory written by scripts/compare_methods.py holds the fingerprint (SHA-256) of
its logits on the test images it was scored on; this loads the model from its manifest alone,
predicts the same images again, and compares fingerprints and accuracy. On the machine and
thread count that saved it, the fingerprints must be equal (bit-identical predictions); on
another CPU the last bits may differ, and then the accuracy is what compares.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from torch_impl.artifact import load_compressed, logits_fingerprint
from torch_impl.cli.flags import add_data_args, fail, make_parser
from torch_impl.cli.process import flush_denormals
from torch_impl.data import CIFAR10DataModule, DataError
from torch_impl.inference import accuracy


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = make_parser(__doc__)
    p.add_argument("models", nargs="+", help="saved model directories (manifest.json inside)")
    add_data_args(p, test_limit=False)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    flush_denormals()  # as when the models were scored: see torch_impl/cli/process.py
    try:
        loaded = [(Path(d), *load_compressed(d)) for d in args.models]
        sizes = {m["metrics"].get("n_test") for _, _, m in loaded}
        if None in sizes or len(sizes) != 1:
            raise ValueError("every model must carry test_logits_sha256 and n_test (saved by compare_methods.py) "
                             "on the same number of test images")
        n_test = sizes.pop()
        dm = CIFAR10DataModule(args.data_dir, args.cache_dir, test_limit=n_test if n_test < 10_000 else None)
        images, labels = (torch.from_numpy(a) for a in dm.numpy_splits()["test"])
    except (DataError, ValueError, FileNotFoundError) as err:
        fail(err)
    out = []
    for path, model, manifest in loaded:
        saved = manifest["metrics"]
        same = logits_fingerprint(model, images) == saved["test_logits_sha256"]
        acc = accuracy(model, images, labels)
        out.append({"model": str(path), "identical": same, "test_acc": acc, "saved_test_acc": saved.get("test_acc")})
        print(f"{'identical' if same else 'DIFFERENT'} logits on {n_test} test images; accuracy {100 * acc:.2f}% "
              f"(saved {100 * saved.get('test_acc', float('nan')):.2f}%): {path}")
    return out


if __name__ == "__main__":
    sys.exit(0 if all(r["identical"] for r in main()) else 1)
