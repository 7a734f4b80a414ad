"""Helpers several test files share: the scripts as modules, and their argparse parsers."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in (ROOT / "scripts").glob("*.py"))


def load_script(name: str) -> ModuleType:
    """The code of ``scripts/<name>.py``: its module in ``torch_impl.commands`` (``main`` not run)."""
    return importlib.import_module(f"torch_impl.commands.{name}")


class _Built(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def script_parser(name: str) -> argparse.ArgumentParser:
    """The parser ``scripts/<name>.py``'s ``parse_args`` builds, caught before it parses."""
    module = load_script(name)
    real, real_known = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args

    def catch(self, *args, **kwargs):
        raise _Built(self)
    argparse.ArgumentParser.parse_args = argparse.ArgumentParser.parse_known_args = catch
    try:
        module.parse_args([])
    except _Built as built:
        return built.parser
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args = real, real_known
    raise AssertionError(f"scripts/{name}.py's parse_args built no parser")


def save_trained(path: Path, model, n_images: int, val_fraction: float = 0.1) -> Path:
    """``model`` saved as ``scripts/train.py`` saves it, recording a training split over ``n_images``
    training images (the comparison checks its validation images against it)."""
    from torch_impl.checkpoint import save_model
    from torch_impl.data import split_record

    return save_model(path, model, meta={"metrics": {"split": split_record(n_images, val_fraction, 0)}})
