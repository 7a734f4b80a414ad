"""``svd-compress``: one command whose subcommands are the scripts' code."""

from __future__ import annotations

import pytest

from tests.helpers import SCRIPTS
from torch_impl.commands.main import COMMANDS, main


def test_every_script_is_a_subcommand_and_help_lists_them(capsys) -> None:
    assert sorted(COMMANDS.values()) == SCRIPTS
    main(["--help"])
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS) and "Train the take-home network" in out


def test_a_subcommand_runs_the_script_and_an_unknown_one_is_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["sweep", "--batch-sizes", "10000"])
    assert stop.value.code == 2
    assert "svd-compress sweep: error: argument --batch-sizes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["swep"])
    assert stop.value.code == 2 and "unknown command 'swep'" in capsys.readouterr().err
