"""scripts/replicate.py: one comparison per checkpoint, its own seed, resumed by rerunning; and
``make replicate`` end to end at tiny size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.commands.conftest import SmokeRun, copy_of, make, real_data_env, steps_run
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
def test_make_replicate_trains_another_seed_and_counts_each_claim(smoke_run: SmokeRun, tmp_path: Path) -> None:
    runs = copy_of(smoke_run, tmp_path)
    done = make(["replicate", "SMOKE=1", "SEEDS=43", f"OUT={runs}"], env=real_data_env())
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert steps_run(done.stdout) == ["train", "replicate"]  # seed 42's model is reused
    rep = json.loads((runs / "replicate" / "replication.json").read_text())
    assert len(rep["runs"]) == 2 and (runs / "replicate" / "REPLICATION.md").is_file()
    for i in range(2):
        compared = json.loads((runs / "replicate" / f"run{i}" / "compare.json").read_text())
        assert {r["method"] for r in compared["rows"]} >= {"SVD f=0.5", "dense int8"}
