"""The README's commands work as written: every script, flag, make target and path it names exists.

Reads the README's fenced code blocks: ``python scripts/X.py --flag ...`` lines are checked
against that script's own argparse parser, ``make T`` against the Makefile's targets; every
repository path named anywhere in the README (code blocks, inline code, links) must exist.
"""

from __future__ import annotations

import re
import shlex

import pytest

from tests.helpers import ROOT, script_parser

README = ROOT / "README.md"
MAX_WORDS = 1500  # a guide for a new user; details live under docs/
REPO_DIRS = ("scripts/", "torch_impl/", "jax_ref/", "docs/", "tests/", "parity_tests/", "examples/")


def code_blocks(text: str, languages: tuple[str, ...] | None = None) -> list[str]:
    return [body for lang, body in re.findall(r"```([a-z]*)\n(.*?)```", text, flags=re.S)
            if languages is None or lang in languages]


def commands(text: str) -> list[list[str]]:
    """Each command line of the shell code blocks, as words (comments and continuations joined)."""
    out = []
    for block in code_blocks(text, ("bash", "sh")):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                out.append(shlex.split(line))
    return out


def script_calls(text: str) -> list[tuple[str, list[str]]]:
    calls = []
    for words in commands(text):
        for i, w in enumerate(words):
            if m := re.fullmatch(r"scripts/(\w+)\.py", w):
                calls.append((m.group(1), words[i + 1:]))
    return calls


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([\w-]+):", text, flags=re.M)) | set(
        t for line in re.findall(r"^\.PHONY:(.*)$", text, flags=re.M) for t in line.split())


def test_the_readme_is_a_short_guide() -> None:
    text = README.read_text()
    words = len(re.sub(r"```.*?```", " ", text, flags=re.S).split()) + sum(len(b.split()) for b in code_blocks(text))
    assert words <= MAX_WORDS, f"README.md has {words} words; move details under docs/"


def test_every_script_and_flag_in_the_readme_exists() -> None:
    calls = script_calls(README.read_text())
    assert calls, "the README names no script"
    for name, args in calls:
        assert (ROOT / "scripts" / f"{name}.py").is_file(), f"README names scripts/{name}.py, which does not exist"
        known = {s for a in script_parser(name)._actions for s in a.option_strings}
        for word in args:
            if word.startswith("--"):
                flag = word.split("=", 1)[0]
                assert flag in known, f"README: scripts/{name}.py has no flag {flag}; see its --help"


def test_every_make_target_in_the_readme_exists() -> None:
    targets = make_targets()
    named = [w[1] for w in commands(README.read_text()) if len(w) > 1 and w[0] == "make"]
    assert named, "the README names no make target"
    for t in named:
        assert t in targets, f"README: make has no target {t!r}"


@pytest.mark.parametrize("kind", ["links", "inline code"])
def test_every_repository_path_in_the_readme_exists(kind: str) -> None:
    text = README.read_text()
    if kind == "links":
        paths = [p.split("#")[0] for p in re.findall(r"\]\(([^)\s]+)\)", text) if not p.startswith("http")]
    else:
        spans = re.findall(r"`([^`\n]+)`", text) + [w for c in commands(text) for w in c]
        paths = [p.rstrip(".,:;") for s in spans for p in s.split() if p.startswith(REPO_DIRS)]
    assert paths or kind == "inline code"
    for p in paths:
        if p and "<" not in p and "*" not in p:
            assert (ROOT / p).exists(), f"README names {p}, which is not in the repository"
