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
    p.add_argument("--data-dir", help="CIFAR-10 location (default: $CIFAR10_DIR, else ./data/cifar10, downloaded "
                                      "there when missing): image folders train/<class>/ and test/<class>/, "
                                      "or torchvision's cifar-10-batches-py")
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


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


def add_timing_args(p: argparse.ArgumentParser, time_cap_s: float) -> None:
    """The latency protocol's flags (``torch_impl.latency.time_interleaved``)."""
    p.add_argument("--target", type=positive_float, default=0.03,
                   help="stop timing when every ratio to dense has a 95%% interval within +-this share")
    p.add_argument("--min-rounds", type=positive_int, default=5)
    p.add_argument("--max-rounds", type=positive_int, default=60)
    p.add_argument("--time-cap", type=positive_float, default=time_cap_s,
                   help=f"seconds of timing rounds at most (default {time_cap_s:g}); a warning says if it stopped them")


def timing_protocol(args: argparse.Namespace) -> dict:
    if args.min_rounds > args.max_rounds:
        raise ValueError(f"--min-rounds {args.min_rounds} exceeds --max-rounds {args.max_rounds}; lower it")
    return {"target": args.target, "min_rounds": args.min_rounds, "max_rounds": args.max_rounds,
            "time_cap_s": args.time_cap}


def fail(err: BaseException | str) -> NoReturn:
    """End the script with ``error: <message>`` on stderr and exit status 1."""
    sys.exit(f"error: {err}")
