"""The package's dependency rules, read from the source (docs/layout.md draws them).

``torch_impl``'s top level is the core: the model, the low-rank layers, data, training and
models on disk. Each folder is a role that builds on the core; a folder imports only the
layers it lists in ``MAY_IMPORT``, so the core runs and is tested without any of them, and
two roles on one level (deploy, parity, compare) never depend on each other. Only
``parity/`` talks to JAX's side (``jax_ref``), and ``jax_ref`` never imports ``torch_impl``.
``commands/`` (the scripts' code and the ``svd-compress`` command) sits on top of every role.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "torch_impl"
MAX_TOP_LEVEL_MODULES = 16
MAY_IMPORT = {
    "core": {"core"},
    "measure": {"core", "measure"},
    "deploy": {"core", "measure", "deploy"},
    "parity": {"core", "measure", "parity", "jax_ref"},
    "compare": {"core", "measure", "compare"},
    "cli": {"core", "measure", "cli"},
    "commands": {"core", "measure", "deploy", "parity", "compare", "cli", "commands"},
}


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


def layer_of_module(name: str) -> str | None:
    """``torch_impl.measure.latency`` -> "measure"; ``torch_impl.model`` -> "core"; None outside."""
    parts = name.split(".")
    if parts[0] == "jax_ref":
        return "jax_ref"
    if parts[0] != "torch_impl" or len(parts) == 1:
        return None
    return parts[1] if parts[1] in MAY_IMPORT else "core"


def layer_of_file(path: Path, package: Path) -> str:
    rel = path.relative_to(package)
    return rel.parts[0] if len(rel.parts) > 1 else "core"


def wrong_direction(paths: list[Path], package: Path = PACKAGE) -> dict[str, list[str]]:
    """Per file (relative to ``package``), the imports its layer may not make."""
    out = {}
    for p in paths:
        allowed = MAY_IMPORT[layer_of_file(p, package)]
        bad = sorted(m for m in imported_modules(p) if (layer := layer_of_module(m)) and layer not in allowed)
        if bad:
            out[str(p.relative_to(package))] = bad
    return out


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_folder_is_a_known_layer_and_the_top_level_is_small() -> None:
    folders = {p.parent.name for p in package_files() if p.parent != PACKAGE}
    assert folders == set(MAY_IMPORT) - {"core"}
    top = [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    assert 8 <= len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_no_import_goes_to_a_layer_it_may_not_use() -> None:
    assert wrong_direction(package_files()) == {}


def test_jax_reference_never_imports_torch_impl() -> None:
    files = sorted((ROOT / "jax_ref").glob("*.py"))
    assert files and all(not any(m.startswith("torch_impl") for m in imported_modules(p)) for p in files)


def test_no_import_cycles() -> None:
    """Module-level imports only: a function-local import is how a cycle would hide, so none may
    close one either (every import of the file counts)."""
    def module(p: Path) -> str:
        return ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    graph = {module(p): imported_modules(p) for p in package_files()}
    graph = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
        if m in done:
            return
        for d in sorted(graph[m]):
            visit(d, path + [m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])


@pytest.mark.parametrize(("where", "source", "planted"), [
    ("model.py", "import torch_impl.compare.recipes", "torch_impl.compare.recipes"),
    ("lowrank.py", "from torch_impl.measure import latency", "torch_impl.measure"),
    ("measure/sweep.py", "def f():\n    from torch_impl.deploy.export import export_model\n",
     "torch_impl.deploy.export"),
    ("compare/run.py", "from torch_impl.parity.haiku_convert import torch_to_haiku", "torch_impl.parity.haiku_convert"),
    ("compare/run.py", "import jax_ref.model", "jax_ref.model"),
    ("deploy/export.py", "from torch_impl.cli.flags import fail", "torch_impl.cli.flags"),
])
def test_a_planted_wrong_direction_import_is_caught(tmp_path: Path, where: str, source: str, planted: str) -> None:
    """The rule, on a copy of a real file with one import added (at the top or inside a function)."""
    copy = tmp_path / "torch_impl" / where
    copy.parent.mkdir(parents=True)
    copy.write_text((PACKAGE / where).read_text() + "\n" + source + "\n")
    assert planted in wrong_direction([copy], tmp_path / "torch_impl").get(where, [])
