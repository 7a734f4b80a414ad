"""What the comparison tells a user to run next, run: ``recommended.json``'s export command on a
recommended model, ``python scripts/verify_models.py`` on every saved model in a fresh process,
and ``--format torch-export`` on the dense model.pt, all on the real test images."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.commands.conftest import SmokeRun, real_data_env
from tests.helpers import ROOT, load_script

pytestmark = pytest.mark.slow
TEST_IMAGES = "300"


def next_command(smoke_run: SmokeRun) -> list[str]:
    """The export command recommended.json gives for its first recommended model."""
    rows = json.loads((smoke_run.out / "compare" / "recommended.json").read_text())["rows"]
    commands = [r["export"] for r in rows if r.get("export")]
    if not commands:  # no budget was met at this size: a saved model, as the README's command names it
        return ["python", "scripts/export.py", str(smoke_run.models()[0]), "--format", "onnx"]
    return shlex.split(commands[0])


def test_the_recommended_export_command_writes_a_file_that_matches_eager(smoke_run: SmokeRun, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the deploy extra (pip install -e '.[deploy]') is not installed")
    words = next_command(smoke_run)
    assert words[:2] == ["python", "scripts/export.py"] and words[-2:] == ["--format", "onnx"]
    model_dir = Path(shutil.copytree(words[2], tmp_path / Path(words[2]).name))  # it writes beside the model
    data = ["--data-dir", real_data_env()["CIFAR10_DIR"], "--test-limit", TEST_IMAGES]
    report = load_script("export").main([str(model_dir), *words[3:], *data])
    assert (model_dir / "model.onnx").is_file() and (model_dir / "model.onnx.check.json").is_file()
    assert report["logits_within_tolerance"] and report["accuracy_exported"] == report["accuracy_eager"]
    assert report["n_images"] == int(TEST_IMAGES)

    dense = tmp_path / "dense" / "model.pt"
    dense.parent.mkdir()
    shutil.copy(smoke_run.checkpoint, dense)
    pt2 = load_script("export").main([str(dense), "--format", "torch-export", *data])
    assert (dense.parent / "model.pt2").is_file() and pt2["accuracy_exported"] == pt2["accuracy_eager"]


def test_verify_models_reloads_every_saved_model_in_a_fresh_process(smoke_run: SmokeRun) -> None:
    dirs = [str(d) for d in smoke_run.models()]
    done = subprocess.run([sys.executable, "scripts/verify_models.py", *dirs], cwd=ROOT, env=real_data_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith(("identical", "DIFFERENT"))]
    assert len(lines) == len(dirs) and all(line.startswith("identical logits on 300 test images") for line in lines)
