"""``make deploy`` (scripts/deploy_frontier.py) end to end at tiny size, after ``make run SMOKE=1``:
report, saved winners, fresh-process reload, and the report rebuilt from its results."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.commands.conftest import SmokeRun, copy_of, make, real_data_env, steps_run
from tests.helpers import load_script

pytest.importorskip("onnxruntime", reason="the deploy extra (pip install -e '.[deploy]') is not installed")
pytest.importorskip("openvino", reason="the deploy extra (pip install -e '.[deploy]') is not installed")
pytestmark = pytest.mark.slow


def test_make_deploy_judges_targets_saves_winners_and_reloads_them(smoke_run: SmokeRun, tmp_path: Path) -> None:
    runs = copy_of(smoke_run, tmp_path)
    done = make(["deploy", "SMOKE=1", f"OUT={runs}"], env=real_data_env())
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert steps_run(done.stdout) == ["deploy_frontier"]  # make run's steps were done
    out = runs / "compare" / "deploy"
    report = (out / "FRONTIER.md").read_text()
    for head in ("## Recommendation", "## Targets (chosen on validation, judged on test)", "## Every timed combination",
                 "## Left out, and why", "## Reloaded in a fresh process"):
        assert head in report
    assert report.split("## Recommendation", 1)[1].split("\n## ", 1)[0].strip() in done.stdout
    saved = json.loads((out / "frontier.json").read_text())
    keys = {r["method"] for r in saved["rows"]}
    assert "dense | fp32 | eager" in keys and "dense copy (A/A) | fp32 | eager" in keys
    assert list(saved["config"]["runtimes"]) == ["eager", "onnxruntime"]  # SMOKE's, from the Makefile
    assert all(r["test_diff_lo"] <= r["test_diff"] <= r["test_diff_hi"] for r in saved["rows"])
    assert set(saved["targets"]) == {"A", "B", "C", "D"} and saved["aa_control"]
    deployed = sorted((out / "deployed").iterdir())
    assert deployed and all((d / "deploy.json").is_file() for d in deployed)
    reloaded = [line for line in report.splitlines() if line.startswith(("identical", "DIFFERENT"))]
    assert len(reloaded) == len(deployed) and all(line.startswith("identical") for line in reloaded)

    script = load_script("deploy_frontier")
    argv = ["--checkpoint", str(runs / "train" / "model.pt"), "--compare-dir", str(runs / "compare")]
    with pytest.raises(SystemExit, match="frontier.json"):  # a finished run is kept unless --overwrite
        script.main(argv)
    (out / "FRONTIER.md").unlink()  # the report again from frontier.json, nothing re-measured
    assert script.main(["--out-dir", str(out), "--report-only"]) == []
    assert (out / "FRONTIER.md").read_text() == report
    assert os.path.getsize(out / "frontier.json") > 0
