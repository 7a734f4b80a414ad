"""The command-line flags the scripts share, defined once, and how a script reports bad input.

Every script parses its flags with argparse, builds what they name, runs, and prints; a
mistake in the input ends it with one line that names the problem and the fix (``fail``).
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

DEFAULT_CHECKPOINT = "runs/train/model.pt"


def positive_int(text: str) -> int:
    """An argparse ``type`` for counts: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_data_args(p: argparse.ArgumentParser, test_limit: bool = True) -> None:
    p.add_argument("--data-dir", help="CIFAR-10 location (default: $CIFAR10_DIR): image folders "
                                      "train/<class>/ and test/<class>/, or torchvision's cifar-10-batches-py")
    p.add_argument("--cache-dir", help="decoded-array cache (default: $SVD_COMPRESS_CACHE or ~/.cache/svd_compress)")
    if test_limit:
        p.add_argument("--test-limit", type=positive_int,
                       help="evaluate on a seeded random subset of N test images (quick looks)")


def add_checkpoint_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                   help=f"model.pt or Lightning .ckpt written by scripts/train.py (default: {DEFAULT_CHECKPOINT})")


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="torch device: auto (the GPU if any), cpu, cuda, cuda:1")


def add_progress_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress-bar", action="store_true", help="no progress bars (logs, CI)")


def fail(err: BaseException | str) -> NoReturn:
    """End the script with ``error: <message>`` on stderr and exit status 1."""
    sys.exit(f"error: {err}")
