"""scripts/replicate.py: one comparison per checkpoint, its own seed, resumed by rerunning; and
the script end to end on real checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.commands.conftest import SmokeRun, real_data_env
from tests.compare.test_replicate import write_run
from tests.helpers import load_script


def test_each_checkpoint_gets_its_own_run_and_seed_and_a_rerun_reads_them_back(tmp_path: Path, monkeypatch) -> None:
    script = load_script("replicate")
    calls = []

    def fake_compare(argv):
        calls.append(argv)
        seed = int(argv[argv.index("--seed") + 1])
        write_run(Path(argv[argv.index("--out-dir") + 1]), (0.700, 0.701, 0.690)[seed], seed, monkeypatch)
    monkeypatch.setattr(script.compare_methods, "main", fake_compare)
    out = tmp_path / "rep"
    argv = ["--checkpoints", "a.pt", "b.pt", "c.pt", "--out-dir", str(out), "--time-cap", "60"]
    rep = script.main(argv)
    assert [c[:6] for c in calls] == [["--checkpoint", ck, "--out-dir", str(out / f"run{i}"), "--seed", str(i)]
                                      for i, ck in enumerate(("a.pt", "b.pt", "c.pt"))]
    assert all(c[6:] == ["--time-cap", "60"] for c in calls)  # other flags go on to the comparison
    assert (out / "REPLICATION.md").is_file() and (out / "replication.json").is_file()
    assert len(rep["runs"]) == 3
    calls.clear()
    again = script.main(argv)  # finished runs are read back, not rerun
    assert calls == [] and again["claims"] == rep["claims"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--checkpoints", "a.pt"], "at least two dense checkpoints"),
    (["--checkpoints", "a.pt", "b.pt", "--seed", "3"], "--seed is set per run"),
])
def test_bad_requests_are_one_line(argv: list[str], message: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=message):
        load_script("replicate").main([*argv, "--out-dir", str(tmp_path)])


@pytest.mark.slow
def test_replicate_runs_a_comparison_per_checkpoint_and_counts_each_claim(smoke_run: SmokeRun, tmp_path: Path) -> None:
    """The script on real checkpoints (make run's, and a copy standing in for another seed's: the
    mechanics, not the claims, are under test); ``make replicate``'s recipe is parsed by
    tests/commands/test_every_command.py."""
    other = tmp_path / "seed43" / "model.pt"
    other.parent.mkdir()
    shutil.copy2(smoke_run.checkpoint, other)
    out = tmp_path / "replicate"
    rep = load_script("replicate").main([
        "--checkpoints", str(smoke_run.checkpoint), str(other), "--out-dir", str(out), "--recipes",
        "SVD f=0.5;dense int8", "--calib-images", "64", "--data-dir", real_data_env()["CIFAR10_DIR"],
        "--test-limit", "300", "--min-rounds", "3", "--max-rounds", "3", "--queries", "10", "--no-progress-bar"])
    saved = json.loads((out / "replication.json").read_text())
    assert len(rep["runs"]) == len(saved["runs"]) == 2 and (out / "REPLICATION.md").is_file()
    for i in range(2):
        compared = json.loads((out / f"run{i}" / "compare.json").read_text())
        assert {r["method"] for r in compared["rows"]} >= {"SVD f=0.5", "dense int8"}
        assert compared["config"]["seed"] == i  # each run draws its recipes anew
