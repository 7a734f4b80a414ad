"""``svd-compress <command> [flags]``: the scripts as one installed command.

Each command is the same code as ``scripts/<script>.py`` in a checkout (``COMMANDS``); its
flags are that script's (``svd-compress <command> --help``).
"""

from __future__ import annotations

import ast
import importlib
import sys
from importlib.util import find_spec
from types import ModuleType

COMMANDS = {"train": "train", "sweep": "sweep_ranks", "compare": "compare_methods", "replicate": "replicate",
            "export": "export", "verify": "verify_models", "runtimes": "runtime_matrix", "deploy": "deploy_frontier",
            "parity": "parity_report",
            "bench-inference": "bench_inference", "bench-training": "bench_training"}


def summary(module: str) -> str:
    """A command's first docstring line, read without importing it (imports take seconds)."""
    spec = find_spec(f"torch_impl.commands.{module}")
    with open(spec.origin) as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    return doc.splitlines()[0] if doc else ""


def usage() -> str:
    width = max(map(len, COMMANDS))
    return ("usage: svd-compress <command> [flags]   (svd-compress <command> --help: its flags)\n\ncommands:\n"
            + "\n".join(f"  {name:<{width}}  {summary(module)}" for name, module in COMMANDS.items()))


def run(argv: list[str]) -> tuple[ModuleType | None, object]:
    """Run one command as ``svd-compress`` would: its module and what its ``main`` returned
    (the rows, metrics or report a caller in Python wants)."""
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return None, None
    if argv[0] not in COMMANDS:
        print(f"svd-compress: error: unknown command {argv[0]!r}; one of {', '.join(COMMANDS)} "
              "(svd-compress --help)", file=sys.stderr)
        raise SystemExit(2)
    module = importlib.import_module(f"torch_impl.commands.{COMMANDS[argv[0]]}")
    program, sys.argv[0] = sys.argv[0], f"svd-compress {argv[0]}"  # its errors and --help name it so
    try:
        return module, module.main(argv[1:])
    finally:
        sys.argv[0] = program


def exit_status(module: ModuleType | None, result: object) -> int:
    """0, or what the command's own ``exit_status(result)`` says (verify: 1 when a model differs).
    Never the result itself: ``sys.exit`` would print a returned list and exit 1."""
    status = getattr(module, "exit_status", None)
    return int(status(result)) if status is not None else 0


def main(argv: list[str] | None = None) -> int:
    """The installed ``svd-compress``: the command's exit status."""
    return exit_status(*run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
