"""The user's path at tiny size: ``make run SMOKE=1`` once per session, on the real images.

Its outputs (a small network trained a few steps, its sweep, its comparison and saved models)
are what the other commands' end-to-end tests start from, as a user's commands start from
``make run``'s. Each test copies what it changes; none writes into the shared run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REAL_DATA
from tests.helpers import ROOT

MAKE_TIMEOUT_S = 900  # a hung step fails the test instead of the whole CI run


@dataclass(frozen=True)
class SmokeRun:
    out: Path  # make's OUT: train/, sweep/, compare/
    done: subprocess.CompletedProcess

    @property
    def checkpoint(self) -> Path:
        model = self.out / "train" / "model.pt"
        if not model.is_file():
            pytest.fail(f"make run SMOKE=1 wrote no {model}:\n{self.done.stdout[-3000:]}\n{self.done.stderr[-3000:]}")
        return model

    def models(self) -> list[Path]:
        found = sorted(p for p in (self.out / "compare" / "models").glob("*") if (p / "manifest.json").is_file())
        if not found:
            pytest.fail(f"make run SMOKE=1 saved no models:\n{self.done.stderr[-3000:]}")
        return found


def copy_of(smoke_run: SmokeRun, tmp_path: Path) -> Path:
    """A copy of the run's OUT for a test that adds to it (times kept, so make sees what is done)."""
    smoke_run.checkpoint  # noqa: B018 (fails the test, with make's output, when the run wrote nothing)
    return Path(shutil.copytree(smoke_run.out, tmp_path / "runs", ignore=shutil.ignore_patterns(".lock")))


def make(args: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``make ARGS`` as a user types it, with this interpreter as the project's Python and the
    install step taken as done (``-o``: the environment running the tests is the install)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = dict(os.environ if env is None else env)
    for k in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS"):  # a make around pytest must not leak its flags in
        env.pop(k, None)
    return subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", f"PY={sys.executable}", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=MAKE_TIMEOUT_S)


def steps_run(stdout: str) -> list[str]:
    """The scripts make started, in order (the lines make echoes: the interpreter, then the script)."""
    return re.findall(r"^\S*python\S* scripts/(\w+)\.py", stdout, flags=re.M)


def real_data_env() -> dict[str, str]:
    if not (REAL_DATA / "train").is_dir():
        pytest.skip(f"real CIFAR-10 not found at {REAL_DATA} (set CIFAR10_DIR)")
    return {**os.environ, "CIFAR10_DIR": str(REAL_DATA)}


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    env = real_data_env()
    out = tmp_path_factory.mktemp("smoke") / "runs"
    return SmokeRun(out, make(["run", "SMOKE=1", f"OUT={out}"], env=env))
