"""Every script's ``--help`` explains every option and shows its default; one name for one thing."""

from __future__ import annotations

import argparse

import pytest

from tests.helpers import SCRIPTS, script_parser


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.help is not argparse.SUPPRESS and a.dest != "help"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_option_has_help_and_its_default_in_it(name: str) -> None:
    parser = script_parser(name)
    text = parser.format_help()
    for action in options(parser):
        assert action.help, f"{name} {action.option_strings[0]} has no help"
        if action.default is not None and not isinstance(action.default, bool):
            line = parser._get_formatter()._expand_help(action) if action.help else ""
            assert "default" in line, f"{name} {action.option_strings[0]}: its default is not shown"
    assert "usage:" in text


@pytest.mark.parametrize("name", SCRIPTS)
def test_one_name_for_one_thing(name: str) -> None:
    flags = {s for a in options(script_parser(name)) for s in a.option_strings}
    assert not flags & {"--force", "--only", "--accelerator"}, f"{name}: an older name shows in --help"
    if "--out-dir" in flags and name != "bench_training":  # a benchmark rewrites its own files
        assert "--overwrite" in flags, f"{name} writes results but cannot be told to replace them"
