"""A run ended by SIGTERM or SIGINT exits non-zero, says how to continue, and continues."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Callback

from tests.conftest import write_image_folder
from tests.helpers import load_script
from torch_impl import training
from torch_impl.cli.process import stop_on_signals


class SignalAt(Callback):
    """Sends this process ``signum`` after optimizer step ``step``, as a scheduler would."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_block_exits_128_plus_signum_and_restores_the_handlers(signum: int, capsys) -> None:
    before = signal.getsignal(signum)
    with pytest.raises(SystemExit) as stop, stop_on_signals("rerun it"):
        os.kill(os.getpid(), signum)
    assert stop.value.code == 128 + signum
    assert f"stopped by {signal.Signals(signum).name} before finishing; rerun it" in capsys.readouterr().err
    assert signal.getsignal(signum) is before


@pytest.mark.slow  # two short training runs
def test_training_stopped_by_sigterm_fails_loudly_and_resume_finishes_it(tmp_path: Path, monkeypatch,
                                                                         capsys) -> None:
    """Lightning turns SIGTERM into a SystemExit with no code (status 0); the script must not."""
    root = write_image_folder(tmp_path / "data", n_train=4, n_test=1)
    out = tmp_path / "run"
    argv = ["--data-dir", str(root), "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(out), "--steps", "8",
            "--batch-size", "8", "--ckpt-every", "3", "--eval-every", "100", "--val-fraction", "0",
            "--no-progress-bar", "--device", "cpu"]
    train = load_script("train")
    real = training.run_training
    monkeypatch.setattr(train, "run_training", lambda cfg, resume=False: real(
        cfg, resume=resume, callbacks=[] if resume else [SignalAt(7, signal.SIGTERM)]))
    with pytest.raises(SystemExit) as stop:
        train.main(argv)
    assert stop.value.code == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "stopped by SIGTERM before finishing; rerun with --resume" in err
    assert not (out / "model.pt").exists() and not (out / ".lock").exists()
    metrics = train.main([*argv, "--resume"])
    assert metrics["resumed_from_step"] == 6 and metrics["steps"] == 8
    assert json.loads((out / "metrics.json").read_text())["steps"] == 8
