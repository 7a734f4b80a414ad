"""Claims counted over training runs, from the files each run's comparison writes."""

from __future__ import annotations

from pathlib import Path

from tests.compare.synthetic import DENSE, synthetic
from torch_impl.compare import run as compare_run
from torch_impl.compare.replicate import read_run, replicate, replication_report
from torch_impl.compare.run import write_outputs

TIMING = {"rounds": {"rounds": 6, "elapsed_s": 60.0, "stopped_by": "target", "worst_halfwidth": 0.02,
                     "target_halfwidth": 0.03, "warning": None}}


def write_run(out: Path, energy_acc: float, seed: int, monkeypatch=None) -> Path:
    """A finished comparison: dense, an energy-rule row at ``energy_acc`` (validation; test 1 pp
    below, so dense's 0.69 test is matched at 0.70) and a fast row 2 pp below."""
    rows = [DENSE, synthetic("energy tau=0.9", "per-layer ranks", energy_acc, 0.45, 10e6, rule="energy"),
            synthetic("budget 1M + KD", "pool folding", 0.68, 0.17, 3e6, pool_fold=True)]
    meta = {"batch_sizes": [10_000, 1], "checkpoint": f"seed{seed}/model.pt", "timing": TIMING,
            "config": {"seed": seed}, "provenance": {"command": "t", "git_commit": "abc", "device": "cpu"}}
    if monkeypatch is not None:  # the plot is not what is tested here, and costs a second per run
        monkeypatch.setattr(compare_run, "pareto_plot", lambda results, out_dir, sizes: out_dir / "pareto.png")
    write_outputs([r.to_row() for r in rows], out, meta)
    return out


def test_each_recipe_and_claim_is_counted_over_the_runs(tmp_path: Path, monkeypatch) -> None:
    accs = (0.700, 0.701, 0.690)  # the third run's energy row lands 1 pp below dense, significantly
    runs = [read_run(f"run{i}", write_run(tmp_path / f"run{i}", a, i, monkeypatch)) for i, a in enumerate(accs)]
    rep = replicate(runs)
    energy = rep["methods"]["energy tau=0.9"]
    assert [round(d, 2) for d in energy["test_diff_pp"]] == [0.0, 0.1, -1.0]
    assert abs(energy["test_diff_pp_spread"]["mean"] - (-0.3)) < 1e-9
    assert round(energy["test_diff_pp_spread"]["min"], 9) == -1.0 and energy["test_diff_pp_spread"]["sd"] > 0.5
    assert energy["verdicts"] == ["no detectable difference", "no detectable difference", "below dense"]
    claims = {c["claim"]: c for c in rep["claims"]}
    same = claims["energy tau=0.9: no detectable difference"]
    assert (same["holds"], same["of"]) == (2, 3)
    rec = [c for c in rep["claims"] if c["claim"].startswith("recommendation")]
    assert rec and all(c["of"] == 3 for c in rec)
    assert [r["seed"] for r in rep["runs"]] == [0, 1, 2] and rep["runs"][0]["dense_test_acc"] == DENSE.test_acc
    text = replication_report(rep, "replicate.py --checkpoints a b c")
    assert "| energy tau=0.9 | -0.30 |" in text and "no detectable difference (2 of 3); below dense (1 of 3)" in text
    assert "frontier target A" in text
    runs[2]["compare"]["timing"] = {"rounds": {**TIMING["rounds"], "rounds": 1}}  # too few rounds for intervals
    short = [c for c in replicate(runs)["claims"] if c["claim"].startswith("recommendation")]
    assert all(c["undecided"] == 1 and c["holds"] <= 2 for c in short)
    assert "(1 undecided)" in replication_report(replicate(runs), "x")
