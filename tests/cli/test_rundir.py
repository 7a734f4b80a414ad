"""Output directories: one live run each, finished runs kept unless asked, stale locks taken over."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT
from torch_impl.cli.rundir import LOCK_NAME, OutDirError, own_out_dir
from torch_impl.training import _last_checkpoint


def write_lock(out: Path, pid: int, host: str | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                             "command": "scripts/train.py --out-dir x", "started": "earlier"}))


def gone_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_lock_is_held_for_the_block_and_released(tmp_path: Path) -> None:
    with own_out_dir(tmp_path / "run", ("model.pt",)) as out:
        owner = json.loads((out / LOCK_NAME).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(OutDirError, match=rf"in use by running process {os.getpid()}"):
            with own_out_dir(out, ("model.pt",)):
                pass
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    with pytest.raises(RuntimeError, match="boom"):  # released when the run fails too
        with own_out_dir(tmp_path / "run", ("model.pt",)):
            raise RuntimeError("boom")
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_live_owner_refused_gone_owner_taken_over(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    write_lock(out, os.getppid())  # a live process that is not this one
    with pytest.raises(OutDirError, match=rf"in use by running process {os.getppid()} \(scripts/train.py"):
        with own_out_dir(out, ()):
            pass
    pid = gone_pid()
    write_lock(out, pid)
    with own_out_dir(out, ()):
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"its owner, process {pid}, is no longer running" in capsys.readouterr().err
    write_lock(out, 1, host="another-host")
    with pytest.raises(OutDirError, match=rf"locked by process 1 on host another-host .* delete {out / LOCK_NAME}"):
        with own_out_dir(out, ()):
            pass


def test_finished_run_refused_unless_resume_or_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.ckpt").write_text("old")
    (out / "metrics.json").write_text("{}")
    markers = ("model.pt", "metrics.json", "checkpoints")
    with pytest.raises(OutDirError, match=r"already holds a run \(metrics.json, checkpoints\); pass --resume"):
        with own_out_dir(out, markers):
            pass
    with own_out_dir(out, markers, resume=True):
        assert (out / "metrics.json").exists()
    with own_out_dir(out, markers, overwrite=True):  # the old run's files go, so nothing stale is resumed
        assert not (out / "metrics.json").exists() and not (out / "checkpoints").exists()
    with pytest.raises(OutDirError, match="contradict"):
        with own_out_dir(out, markers, resume=True, overwrite=True):
            pass


def test_resume_picks_the_newest_checkpoint_not_the_name(tmp_path: Path) -> None:
    import torch

    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    torch.save({"global_step": 500}, ckpts / "last.ckpt")
    torch.save({"global_step": 1500}, ckpts / "last-v1.ckpt")
    torch.save({"global_step": 1000}, ckpts / "step=1000.ckpt")
    assert _last_checkpoint(tmp_path).name == "last-v1.ckpt"


def test_second_train_into_a_live_directory_stops_at_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = importlib.util.spec_from_file_location("train_script", ROOT / "scripts" / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    out = tmp_path / "run"
    out.mkdir()  # made before the first run: own_out_dir removes a directory it made and left empty
    with own_out_dir(out, ()):  # the first run, still going
        with pytest.raises(SystemExit) as exit_info:
            train.main(["--out-dir", str(out), "--data-dir", str(tmp_path / "no_data")])
    assert exit_info.value.code == 2
    assert f"is in use by running process {os.getpid()}" in capsys.readouterr().err
    (out / "metrics.json").write_text("{}")  # a finished run
    with pytest.raises(SystemExit):
        train.main(["--out-dir", str(out), "--data-dir", str(tmp_path / "no_data")])
    assert "already holds a run (metrics.json); pass --resume" in capsys.readouterr().err
