"""``make``'s data location on a user's machine (no ../shared) and on this project's machines."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

SHOW = 'show-data: ; @echo "[$${CIFAR10_DIR-unset}]"'  # a target that prints what the recipes would see


def data_dir_seen(checkout: Path, env_value: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("CIFAR10_DIR", "MAKEFLAGS", "MAKELEVEL")}
    if env_value is not None:
        env["CIFAR10_DIR"] = env_value
    done = subprocess.run(["make", "-s", "--eval", SHOW, "show-data"], cwd=checkout, env=env, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    clone = tmp_path / "main"
    clone.mkdir()
    shutil.copy(ROOT / "Makefile", clone / "Makefile")
    return clone


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_without_shared_the_scripts_default_is_left_alone(checkout: Path) -> None:
    assert data_dir_seen(checkout) == "[unset]"  # the scripts then use ./data/cifar10, downloading it


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_shared_copy_is_used_where_it_exists_and_the_environment_wins(checkout: Path) -> None:
    (checkout.parent / "shared" / "cifar10" / "train").mkdir(parents=True)
    assert data_dir_seen(checkout) == f"[{checkout.parent / 'shared' / 'cifar10'}]"
    assert data_dir_seen(checkout, "/elsewhere") == "[/elsewhere]"
