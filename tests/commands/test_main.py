"""``svd-compress``: one command whose subcommands are the scripts' code."""

from __future__ import annotations

import pytest

from tests.helpers import SCRIPTS
from torch_impl.commands import verify_models
from torch_impl.commands.main import COMMANDS, exit_status, main, run


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


def test_the_installed_command_exits_with_a_status_never_with_the_result(capsys) -> None:
    module, listed = run(["compare", "--list"])
    assert listed == [] and "SVD f=0.2" in capsys.readouterr().out
    assert main(["compare", "--list"]) == 0  # sys.exit(a list), even [], would print it and exit 1
    assert exit_status(module, [{"method": "dense"}]) == 0
    assert exit_status(verify_models, [{"identical": True}, {"identical": False}]) == 1
    assert exit_status(verify_models, [{"identical": True}]) == 0
