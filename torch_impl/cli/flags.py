"""The command-line flags the scripts share, defined once, and how a script reports bad input.

Every script parses its flags with argparse, builds what they name, runs, and prints; a
mistake in the input ends it with one line that names the problem and the fix, and exit
status 2, as argparse ends a malformed flag: values are checked by the ``type=`` functions
here where one flag alone decides, and by ``fail`` after parsing where a file or another
flag must be read first.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from torch_impl.cli.process import stop_on_signals
from torch_impl.cli.rundir import OutDirError, own_out_dir
from torch_impl.measure.latency import TimingProtocol

T = TypeVar("T")

DEFAULT_CHECKPOINT = "runs/train/model.pt"


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``<prog>: error: <what>; see <prog> --help`` and exit 2,
    instead of the usage block above the error, which buries it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written, and every option's default after its help (as
    ``ArgumentDefaultsHelpFormatter`` does), unless the help already states it or there is
    none to state (on/off switches, options whose absence means "not used")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default is None or default is argparse.SUPPRESS or isinstance(default, bool) or "default" in text
                or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


def make_parser(doc: str | None) -> Parser:
    """The parser every script starts from: its module docstring as the description."""
    return Parser(description=doc, formatter_class=HelpFormatter)


def _whole_number_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


positive_int = _whole_number_at_least(1)  # an argparse ``type`` for counts
nonnegative_int = _whole_number_at_least(0)  # an argparse ``type`` for seeds


def holdout_fraction(text: str) -> float:
    """An argparse ``type`` for the share of training images held out: in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number like 0.1, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def positive_int_list(count: int | None = None, example: str = "10000,1") -> Callable[[str], list[int]]:
    """An argparse ``type`` for comma-separated whole numbers of at least 1 (exactly ``count`` of them)."""
    def parse(text: str) -> list[int]:
        parts = [t.strip() for t in text.split(",") if t.strip()]
        values = [positive_int(t) for t in parts]  # its ArgumentTypeError names the bad item
        if not values or (count is not None and len(values) != count):
            want = f"{count} comma-separated numbers" if count else "comma-separated numbers"
            raise argparse.ArgumentTypeError(f"expected {want} like {example}, got {text!r}")
        return values
    return parse


def arg_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse ``type`` from a parser that raises ``ValueError`` with the message to show."""
    def wrapped(text: str) -> object:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    wrapped.__name__ = getattr(parse, "__name__", "value")  # argparse names the type in some errors
    return wrapped


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


def add_overwrite_arg(p: argparse.ArgumentParser, help: str = "replace the results already in --out-dir") -> None:
    p.add_argument("--overwrite", action="store_true", help=help)


RERUN_TO_CONTINUE = "rerun the same command to continue: it keeps what this run finished"


def run_in_out_dir(out_dir: str | Path, markers: tuple[str, ...], overwrite: bool, body: Callable[[Path], T],
           how_to_continue: str = RERUN_TO_CONTINUE) -> T:
    """``body(out_dir)`` while holding ``out_dir`` (``rundir.own_out_dir``: one live run per
    directory; earlier results, ``markers``, kept unless ``overwrite``); a refusal is one line.
    A SIGTERM or SIGINT ends it with a non-zero status and ``how_to_continue`` (``process``)."""
    try:
        with stop_on_signals(how_to_continue), own_out_dir(out_dir, markers, overwrite=overwrite) as out:
            return body(out)
    except OutDirError as err:
        fail(err)


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
    """The flags of a ``TimingProtocol``, its defaults but for the script's time cap."""
    d = TimingProtocol()
    p.add_argument("--target", type=positive_float, default=d.target,
                   help="stop timing when every ratio to dense has a 95%% interval within +-this share")
    p.add_argument("--min-rounds", type=positive_int, default=d.min_rounds,
                   help="rounds every model is timed in before any stops (an interval needs a few)")
    p.add_argument("--max-rounds", type=positive_int, default=d.max_rounds, help="rounds at most")
    p.add_argument("--time-cap", type=positive_float, default=time_cap_s,
                   help="seconds of timing rounds at most; a warning says if it stopped them")
    p.add_argument("--queries", type=positive_int, default=d.queries,
                   help="single-image queries per model per round at batch 1 (p50 and p90 over them; at least 10)")


def timing_protocol(args: argparse.Namespace) -> TimingProtocol:
    if args.min_rounds > args.max_rounds:
        raise ValueError(f"--min-rounds {args.min_rounds} exceeds --max-rounds {args.max_rounds}; lower it")
    if args.queries < 10:
        raise ValueError(f"--queries {args.queries} is too few for a p90; use at least 10")
    return TimingProtocol(args.target, args.min_rounds, args.max_rounds, args.time_cap, args.queries)


class InputError(SystemExit):
    """Exit status 2 (argparse's, for bad input), carrying the one-line message as its text."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def fail(err: BaseException | str) -> NoReturn:
    """End the script with one line, ``error: <message>``, on stderr and exit status 2."""
    text = str(err).strip()
    message = f"error: {text.splitlines()[0] if text else type(err).__name__}"
    print(message, file=sys.stderr)
    raise InputError(message)


def saved_model_dirs(models: list[str], compare_dir: str | None) -> list[Path]:
    """``--models``, then every model a ``compare_methods.py --out-dir`` saved in its ``models/``
    (``--compare-dir``); a compare dir without any ends the script in one line."""
    dirs = [Path(d) for d in models]
    if compare_dir:
        found = sorted(p.parent for p in (Path(compare_dir) / "models").glob("*/manifest.json"))
        if not found:
            fail(f"no saved models under {Path(compare_dir) / 'models'}: run scripts/compare_methods.py "
                 "(it saves the Pareto front by default) or pass --models")
        dirs += found
    return dirs
