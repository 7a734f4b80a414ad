"""Every command a user is told to run is run by the suite, end to end.

``END_TO_END`` maps each command the README, ``docs/`` and the scripts' own ``--help`` texts
name (scripts, make targets, examples) to the test that runs it; a command named anywhere without
an entry here fails, so a new script cannot land with only its library tested. The make recipes
are also expanded (``make -n``) and every script call in them parsed by that script's own parser,
so a renamed flag fails here before a user meets it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, SCRIPTS, script_parser

CI = ".ci/run"  # the command CI runs, so every run of the suite runs it
MAKE_RUN = "test_make_run_trains_sweeps_compares_and_ends_with_the_recommendation"
DEPLOY = "test_make_deploy_judges_targets_saves_winners_and_reloads_them"
REPLICATE = "test_replicate_runs_a_comparison_per_checkpoint_and_counts_each_claim"
PARSED = "test_every_make_recipe_calls_scripts_with_flags_they_take"
# the command a user is told to run -> the test (its function's name under tests/) that runs it
END_TO_END = {
    "make run": MAKE_RUN,
    "make deploy": DEPLOY,
    # Their steps are each run below (run-all's: the sweep, parity, compare's --recipes, runtimes,
    # deploy; replicate's: train, replicate.py); their recipes are parsed. Whole, run-all's 33-recipe
    # comparison and replicate's second training would cost the suite more than its 8 minutes allow.
    "make run-all": PARSED,
    "make replicate": PARSED,
    "make test": CI,
    "make test-fast": CI,  # the suite less the slow lane
    "make install": CI,
    "make lint": CI,
    "scripts/train.py": MAKE_RUN,
    "scripts/sweep_ranks.py": "test_a_killed_sweep_resumes_from_its_rounds_and_writes_every_promised_file",
    "scripts/compare_methods.py": MAKE_RUN,
    "scripts/replicate.py": REPLICATE,
    "scripts/deploy_frontier.py": DEPLOY,
    "scripts/export.py": "test_the_recommended_export_command_writes_a_file_that_matches_eager",
    "scripts/verify_models.py": "test_verify_models_reloads_every_saved_model_in_a_fresh_process",
    "scripts/runtime_matrix.py": "test_every_model_in_every_runtime_it_can_run",
    "scripts/parity_report.py": "test_parity_report_sweeps_both_frameworks_on_the_same_weights",
    "scripts/bench_inference.py": "test_bench_inference_times_every_way_of_running_a_batch",
    "scripts/bench_training.py": "test_bench_training_compares_ways_beside_an_aa_control",
    "examples/compress_torchvision.py": "test_compress_torchvision_factorizes_saves_loads_exports_and_times",
}
RECIPES = ("run", "run-all", "deploy", "replicate")


def named_commands() -> set[str]:
    """Scripts, make targets and examples named in the README, docs/ and the scripts' docstrings."""
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "torch_impl" / "commands").glob("*.py")), *sorted((ROOT / "scripts").glob("*.py"))]
    found = set()
    for path in texts:
        text = path.read_text()
        found |= set(re.findall(r"\b(?:scripts|examples)/\w+\.py\b", text))
        found |= {f"make {t}" for t in re.findall(r"`make ([a-z][\w-]*)", text)}
        found |= {f"make {t}" for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
                  for t in re.findall(r"^make ([a-z][\w-]*)", block, flags=re.M)}
    return found | {f"scripts/{s}.py" for s in SCRIPTS} | {
        f"examples/{p.name}" for p in (ROOT / "examples").glob("*.py")}


def test_every_command_a_user_is_told_to_run_has_an_end_to_end_test() -> None:
    missing = sorted(named_commands() - set(END_TO_END))
    assert not missing, f"named to users but run by no test: {missing}; add an end-to-end test and an END_TO_END entry"
    defined = {name for path in (ROOT / "tests").rglob("test_*.py")
               for name in re.findall(r"^def (test_\w+)\(", path.read_text(), flags=re.M)}
    for command, test in END_TO_END.items():
        if test == CI:
            assert re.search(rf"^{command.split()[-1]}:", (ROOT / "Makefile").read_text(), flags=re.M), command
        else:
            assert test in defined, f"{command}: no test named {test} under tests/"


def script_calls(dry_run: str) -> list[tuple[str, list[str]]]:
    calls = []
    for line in dry_run.replace("\\\n", " ").splitlines():
        if not re.search(r"\bpython\S* scripts/", line):
            continue
        line = re.sub(r"\$\((?:[^()]|\([^()]*\))*\)", "", line)  # the recipes' $(test ... && echo --flag)
        words = shlex.split(line)
        for i, w in enumerate(words):
            if m := re.fullmatch(r"scripts/(\w+)\.py", w):
                calls.append((m.group(1), words[i + 1:]))
    return calls


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("smoke", [False, True], ids=["default", "SMOKE=1"])
def test_every_make_recipe_calls_scripts_with_flags_they_take(smoke: bool, tmp_path: Path) -> None:
    for target in RECIPES:
        done = subprocess.run(["make", "-n", "--no-print-directory", "-o", ".venv/.installed",
                               f"PY={sys.executable}", f"OUT={tmp_path / 'runs'}", *(["SMOKE=1"] * smoke), target],
                              cwd=ROOT, capture_output=True, text=True, check=True)
        calls = script_calls(done.stdout)
        assert calls, f"make -n {target} runs no script"
        for name, args in calls:
            try:
                if name == "replicate":  # its flags, then the comparison's, which it passes on
                    _, rest = script_parser(name).parse_known_args(args)
                    script_parser("compare_methods").parse_args(rest)
                else:
                    script_parser(name).parse_args(args)
            except SystemExit:
                pytest.fail(f"make {target}: scripts/{name}.py does not take {shlex.join(args)}")
