"""The package's dependency rules, read from the source: the core never imports the comparison,
and the JAX reference never imports the torch implementation."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = sorted(p for p in (ROOT / "torch_impl").glob("*.py"))
COMPARE = ROOT / "torch_impl" / "compare"


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names, at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def offending(paths: list[Path], forbidden: str) -> dict[str, list[str]]:
    out = {}
    for p in paths:
        bad = sorted(m for m in imported_modules(p) if m == forbidden or m.startswith(forbidden + "."))
        if bad:
            out[p.name] = bad
    return out


def test_the_layout_is_what_the_rules_speak_of() -> None:
    assert len(CORE) >= 10 and (COMPARE / "recipes.py").is_file()
    assert not any(p.parent == COMPARE for p in CORE)


def test_core_never_imports_the_comparison() -> None:
    assert offending(CORE, "torch_impl.compare") == {}


def test_jax_reference_never_imports_torch_impl() -> None:
    assert offending(sorted((ROOT / "jax_ref").glob("*.py")), "torch_impl") == {}


@pytest.mark.parametrize("source", ["import torch_impl.compare.recipes",
                                    "from torch_impl.compare import report",
                                    "def f():\n    from torch_impl.compare.rank_select import energy_ranks\n"])
def test_the_rule_sees_every_form_of_import(tmp_path: Path, source: str) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    assert list(offending([probe], "torch_impl.compare")) == ["probe.py"]
