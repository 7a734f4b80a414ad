"""``make run``, the README's first command, end to end at tiny size (``SMOKE=1``).

The Makefile's own recipe runs: its step order, the files each step promises, the
recommendation it prints last, a rerun that skips finished steps, the ``--overwrite`` of the
later steps after a retrain; and, on a machine without ``../shared`` and without a network, the
one-line message that names the way out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.commands.conftest import SmokeRun, copy_of, make, steps_run
from tests.helpers import ROOT

pytestmark = pytest.mark.slow

# What each step promises a user (README, "Two commands").
PROMISED = {
    "train": ("model.pt", "metrics.json"),
    "sweep": ("sweep.json", "sweep.csv"),
    "compare": ("compare.json", "compare.csv", "REPORT.md", "recommended.json", "pareto.png"),
}


def failed(done) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"


def test_make_run_trains_sweeps_compares_and_ends_with_the_recommendation(smoke_run: SmokeRun) -> None:
    done = smoke_run.done
    assert done.returncode == 0, failed(done)
    assert steps_run(done.stdout) == ["train", "sweep_ranks", "compare_methods"]
    for step, files in PROMISED.items():
        for name in files:
            assert (smoke_run.out / step / name).is_file(), f"make run wrote no {step}/{name}"
    assert sorted(p.name for p in (smoke_run.out / "sweep").glob("*.png")), "the sweep drew no plot"
    sweep = json.loads((smoke_run.out / "sweep" / "sweep.json").read_text())
    assert {r["rank_fraction"] for r in sweep["rows"] if r["mode"] == "factorized"} == {1.0, 0.5}
    assert not (smoke_run.out / "sweep" / "rounds.jsonl").exists()  # the journal is folded into sweep.json
    recommended = json.loads((smoke_run.out / "compare" / "recommended.json").read_text())
    report = (smoke_run.out / "compare" / "REPORT.md").read_text()
    section = report.split("## Recommendation", 1)[1].split("\n## ", 1)[0].strip()
    assert section and section in done.stdout, "make run must end by printing the report's recommendation"
    assert done.stdout.rstrip().endswith(section.splitlines()[-1].rstrip())
    assert recommended and smoke_run.models()


def test_a_rerun_skips_finished_steps_and_a_retrain_redoes_the_later_ones(smoke_run: SmokeRun, tmp_path: Path) -> None:
    assert smoke_run.done.returncode == 0, failed(smoke_run.done)
    runs = copy_of(smoke_run, tmp_path)
    again = make(["run", "SMOKE=1", f"OUT={runs}"], env={**os.environ, "CIFAR10_DIR": "/nonexistent"})
    assert again.returncode == 0 and steps_run(again.stdout) == [], failed(again)  # nothing reads the data again
    assert "## Recommendation" in again.stdout
    os.utime(runs / "train" / "model.pt")  # as a retrain leaves it: newer than every later step's results
    plan = make(["-n", "run", "SMOKE=1", f"OUT={runs}"])  # what make would run, each line as the shell reads it
    assert plan.returncode == 0 and steps_run(plan.stdout) == ["sweep_ranks", "compare_methods"], failed(plan)
    for line in plan.stdout.replace("\\\n", " ").splitlines():
        if re.search(r"scripts/(sweep_ranks|compare_methods)\.py", line):
            words = subprocess.run(["sh", "-c", f"printf '%s\\n' {line}"], capture_output=True, text=True,
                                   check=True).stdout.split()
            assert "--overwrite" in words, f"a step redone after a retrain must replace its stale results: {line}"


def test_without_shared_data_or_network_make_run_stops_with_one_line(tmp_path: Path) -> None:
    checkout = tmp_path / "main"  # no ../shared beside it
    checkout.mkdir()
    shutil.copy(ROOT / "Makefile", checkout)
    shutil.copytree(ROOT / "scripts", checkout / "scripts")
    env = {k: v for k, v in os.environ.items() if k != "CIFAR10_DIR" and not k.lower().endswith("_proxy")}
    # no network, whatever the machine has: every download goes to a closed local port
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9",
               HTTPS_PROXY="http://127.0.0.1:9", SVD_COMPRESS_CACHE=str(tmp_path / "cache"))
    done = make(["run", "SMOKE=1", f"OUT={tmp_path / 'runs'}"], cwd=checkout, env=env)
    assert done.returncode != 0
    assert steps_run(done.stdout) == ["train"]
    # besides make's own line and torch's import-time log lines (W1208 12:00:00 ...)
    errors = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("make:")
              and not re.match(r"[IWE]\d{4} \d", line)]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(errors) == 1, done.stderr[-3000:]
    assert all(word in errors[0] for word in ("--data-dir", "CIFAR10_DIR", "cifar-10-batches-py")), errors[0]
    assert not (tmp_path / "runs" / "train" / "model.pt").exists()
