"""Every script's bad command-line values end in one line naming the flag and the fix, exit status 2.

Each case runs the script's ``main`` in this process (a subprocess per case would cost a
torch import each) and checks what a user sees: ``SystemExit`` with code 2, one line on
stderr that names the flag, no traceback. One case per script also runs as a real process,
to show the exit status and stderr a shell sees.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, load_script

# torch's own log lines ("W1129 01:00:18.05 ... cpp_extension.py:183] No CUDA runtime is found"),
# printed at import on machines with a CUDA_HOME but no GPU; not the script's output.
TORCH_LOG = re.compile(r"^[IWE]\d{4} \d\d:\d\d:\d\d")


def stderr_lines(text: str) -> list[str]:
    return [line for line in text.strip().splitlines() if not TORCH_LOG.match(line)]


def bad_files(tmp: Path) -> dict[str, Path]:
    (tmp / "not_a_checkpoint.pt").write_bytes(b"these bytes are not a torch file")
    (tmp / "params.txt").write_text("w=1")
    (tmp / "empty_run").mkdir(exist_ok=True)
    (tmp / "bad_json_run").mkdir(exist_ok=True)
    (tmp / "bad_json_run" / "metrics.json").write_text("{not json")
    return {"ckpt": tmp / "not_a_checkpoint.pt", "txt": tmp / "params.txt", "missing": tmp / "missing.pt",
            "empty_run": tmp / "empty_run", "bad_json_run": tmp / "bad_json_run"}


# (script, arguments, text the one line must contain); {name} is filled from bad_files.
CASES = [
    ("train", ["--steps", "0"], "--steps: must be at least 1"),
    ("train", ["--batch-size", "-5"], "--batch-size: must be at least 1"),
    ("train", ["--train-limit", "0"], "--train-limit: must be at least 1"),
    ("train", ["--test-limit", "-1"], "--test-limit: must be at least 1"),
    ("train", ["--seed", "-1"], "--seed: must be at least 0"),
    ("train", ["--val-fraction", "1.5"], "--val-fraction: must be in [0, 1)"),
    ("train", ["--eval-every", "x"], "--eval-every: expected a whole number"),
    ("train", ["--pooling", "max"], "--pooling: invalid choice"),
    ("train", ["--resume", "--overwrite", "--out-dir", "{empty_run}"], "--resume and --overwrite contradict"),
    ("train", ["--resume", "--out-dir", "{empty_run}"], "--resume: no checkpoint in"),
    ("train", ["--precision", "fp16"], "--precision: invalid choice"),
    ("train", ["--framework", "jax", "--precision", "bf16-mixed"], "--precision and --compile are for the torch"),
    ("bench_training", ["--ways", "eager,fast"], "--ways takes comma-separated names from"),
    ("bench_training", ["--blocks", "0"], "--blocks: must be at least 1"),
    ("sweep_ranks", ["--batch-sizes", "0,1"], "--batch-sizes: must be at least 1, got 0"),
    ("sweep_ranks", ["--batch-sizes", "10000"], "--batch-sizes: expected 2 comma-separated numbers"),
    ("sweep_ranks", ["--batch-sizes", "10000,1,2"], "--batch-sizes: expected 2 comma-separated numbers"),
    ("sweep_ranks", ["--fractions", "0.5,1.5"], "--fractions: rank_fraction must be in (0, 1]"),
    ("sweep_ranks", ["--fractions", "a,b"], "--fractions: --fractions takes comma-separated numbers"),
    ("sweep_ranks", ["--modes", "folded"], "--modes: --modes takes factorized,reconstructed"),
    ("sweep_ranks", ["--test-limit", "0"], "--test-limit: must be at least 1"),
    ("sweep_ranks", ["--min-rounds", "9", "--max-rounds", "3", "--test-limit", "20", "--checkpoint", "{missing}"],
     "--min-rounds 9 exceeds --max-rounds 3"),
    ("sweep_ranks", ["--checkpoint", "{missing}", "--test-limit", "20"], "missing.pt"),
    ("sweep_ranks", ["--checkpoint", "{ckpt}", "--test-limit", "20"], "not_a_checkpoint.pt"),
    ("sweep_ranks", ["--haiku-params", "{txt}", "--test-limit", "20"], "unknown suffix '.txt'"),
    ("sweep_ranks", ["--time-cap", "0"], "--time-cap: must be above 0"),
    ("compare_methods", ["--finetune-steps", "0"], "--finetune-steps: must be at least 1"),
    ("compare_methods", ["--fold-budget", "-3"], "--fold-budget: must be at least 1"),
    ("compare_methods", ["--save-models", "some"], "--save-models: invalid choice"),
    ("compare_methods", ["--target", "-0.1"], "--target: must be above 0"),
    ("compare_methods", ["--recipes", "SVD f=0.3", "--checkpoint", "{missing}", "--test-limit", "20", "--out-dir",
                         "{empty_run}"], "missing.pt"),
    ("compare_methods", ["--device", "cuda"], "--device: invalid choice"),
    ("train", ["--device", "tpu"], "--device takes auto, cpu, cuda or cuda:N"),
    ("compare_methods", ["--checkpoint", "{missing}", "--test-limit", "20", "--out-dir", "{empty_run}"],
     "missing.pt"),
    ("parity_report", ["--fractions", "0"], "--fractions: rank_fraction must be in (0, 1]"),
    ("parity_report", ["--jax-run", "{empty_run}", "--test-limit", "20"], "--jax-run"),
    ("parity_report", ["--jax-run", "{bad_json_run}", "--test-limit", "20"], "is not readable JSON"),
    ("runtime_matrix", ["--compare-dir", "{empty_run}"], "no saved models under"),
    ("runtime_matrix", ["--max-rounds", "0"], "--max-rounds: must be at least 1"),
    ("export", ["{missing}", "--format", "onnx"], "no model at"),
    ("export", ["{empty_run}", "--format", "tflite"], "--format: invalid choice"),
    ("verify_models", ["{empty_run}"], "empty_run"),
    ("bench_inference", ["--batch", "0"], "--batch: must be at least 1"),
    ("bench_inference", ["--chunks", "64,,x"], "--chunks: expected a whole number, got 'x'"),
]


@pytest.mark.parametrize("name,args,expect", CASES, ids=[f"{c[0]} {' '.join(c[1])}" for c in CASES])
def test_bad_value_is_one_line_exit_2(name: str, args: list[str], expect: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # default --out-dirs (runs/...) land here, not in the checkout
    # A cold decoded-data cache, as on a fresh machine: a value checked only after the data are
    # decoded would show here as decoding progress before the error (and cost a user the decode).
    monkeypatch.setenv("SVD_COMPRESS_CACHE", str(tmp_path / "cold_cache"))
    files = bad_files(tmp_path)
    argv = [a.format(**files) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        load_script(name).main(argv)
    assert exit_info.value.code == 2, exit_info.value
    err = stderr_lines(capsys.readouterr().err)
    assert len(err) == 1 and "error:" in err[0] and expect.format(**files) in err[0], err
    assert "Traceback" not in err[0]


@pytest.mark.slow
def test_a_shell_sees_one_line_and_status_2(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "sweep_ranks.py"), "--batch-sizes", "10000"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2
    assert stderr_lines(done.stderr) == [
        "sweep_ranks.py: error: argument --batch-sizes: expected 2 comma-separated numbers like 10000,1, "
        "got '10000'; see sweep_ranks.py --help"]
