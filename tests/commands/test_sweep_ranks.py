"""``svd-compress sweep`` (scripts/sweep_ranks.py) end to end on the real images: its files, and a
killed sweep that resumes from the timing rounds it finished."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.commands.conftest import SmokeRun, real_data_env
from torch_impl.cli.process import Interrupted
from torch_impl.commands.main import run as svd_compress
from torch_impl.measure.round_journal import RoundJournal

pytestmark = pytest.mark.slow

ROUNDS = 3  # the fewest that give an interval


def sweep_args(smoke_run: SmokeRun, out: Path) -> list[str]:
    return ["sweep", "--checkpoint", str(smoke_run.checkpoint), "--out-dir", str(out), "--data-dir",
            real_data_env()["CIFAR10_DIR"], "--fractions", "1.0,0.5", "--test-limit", "300", "--min-rounds",
            str(ROUNDS), "--max-rounds", str(ROUNDS), "--queries", "10", "--no-progress-bar"]


def test_a_killed_sweep_resumes_from_its_rounds_and_writes_every_promised_file(smoke_run: SmokeRun, tmp_path: Path,
                                                                              monkeypatch, capsys) -> None:
    out = tmp_path / "sweep"
    append = RoundJournal.append
    kept = []

    def killed_after_two(self, record) -> None:  # SIGTERM as the second round is kept
        append(self, record)
        kept.append(record)
        if len(kept) == 2:
            raise Interrupted(signal.SIGTERM)
    monkeypatch.setattr(RoundJournal, "append", killed_after_two)
    with pytest.raises(SystemExit) as stopped:
        svd_compress(sweep_args(smoke_run, out))
    assert stopped.value.code == 128 + signal.SIGTERM  # never reported as success
    assert len((out / "rounds.jsonl").read_text().splitlines()) >= 3  # a header and the two rounds
    assert not (out / "sweep.json").exists()

    monkeypatch.setattr(RoundJournal, "append", append)
    capsys.readouterr()
    _, rows = svd_compress(sweep_args(smoke_run, out))  # the same command again
    printed = capsys.readouterr().out
    assert "continuing from 2 timing round(s)" in printed
    saved = json.loads((out / "sweep.json").read_text())
    assert saved["timing"]["rounds"]["rounds"] == ROUNDS
    assert [(r["mode"], r["rank_fraction"]) for r in rows if r["mode"] not in ("dense", "control", "yardstick")] == [
        (m, f) for m in ("factorized", "reconstructed") for f in (1.0, 0.5)]
    assert (out / "sweep.csv").is_file() and len(list(out.glob("*.png"))) == 3
    assert not (out / "rounds.jsonl").exists()
    assert saved["timing"]["plain_nchw_eager_over_dense"]["ratio"] > 0  # the yardstick, on by default on CPU
