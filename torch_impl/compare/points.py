"""A comparison's finished points, kept on disk as each completes, so a killed run resumes.

Building the recipes (fine-tunes, distillation) is most of a comparison's time; timing is done
once all models exist, in one set of interleaved rounds. So each recipe's model is written the
moment it is built, under ``<out-dir>/points/<method>/``: the weights and manifest
(``torch_impl.artifact``), then ``point.json`` (what the recipe did, its MACs per layer), last:
a directory without ``point.json`` is an unfinished point and is built again. A rerun of the
same command loads every finished point instead of building it, and says so; a recipe that
raises leaves ``failed.json`` (tried again next run) and the run goes on.

The timing rounds are kept as they finish too (``rounds.jsonl``), so a run killed during its
timing continues its rounds on the rerun; the file goes once the results are written.

``config.json`` holds what decides the models (checkpoint, data, steps, budgets); a rerun with
other settings into the same directory is refused, since its points would mix two runs.

Shapes: each point is one model directory (``model.safetensors`` + ``manifest.json``) plus
``point.json`` = ``{"info": {...}, "macs_by_layer": {layer: MACs per example}}``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from torch_impl.artifact import load_compressed, save_compressed
from torch_impl.files import write_json

POINT_FILE = "point.json"
FAILED_FILE = "failed.json"
CONFIG_FILE = "config.json"
ROUNDS_FILE = "rounds.jsonl"  # the timing rounds of a run killed while timing (torch_impl.measure.round_journal)


def point_name(method: str) -> str:
    """A directory name for a method: lower case, runs of other characters as one dash."""
    return re.sub(r"[^a-z0-9.]+", "-", method.lower()).strip("-")[:80]


class Points:
    """The ``points/`` directory of one comparison (see the module's docstring)."""

    def __init__(self, root: str | Path, config: dict[str, Any], force: bool = False) -> None:
        self.root = Path(root)
        self.force = force
        saved = self.root / CONFIG_FILE
        if saved.is_file() and not force:
            old = json.loads(saved.read_text())
            if diff := sorted(k for k in {**old, **config} if old.get(k) != config.get(k)):
                raise ValueError(f"{self.root} holds points made with other settings ({', '.join(diff)}); "
                                 "rerun with the same settings to resume, --overwrite to rebuild every point, "
                                 "or another --out-dir")
        if force and self.root.exists():
            shutil.rmtree(self.root)
        write_json(saved, config)
        self.skipped: list[str] = []

    def dir(self, method: str) -> Path:
        return self.root / point_name(method)

    def load(self, method: str) -> tuple[nn.Module, dict[str, Any], dict[str, int]] | None:
        """The finished point's model, recipe info and MACs per layer, or None if it is not finished."""
        path = self.dir(method) / POINT_FILE
        if self.force or not path.is_file():
            return None
        saved = json.loads(path.read_text())
        model, _ = load_compressed(self.dir(method))
        self.skipped.append(method)
        return model.eval(), saved["info"], saved["macs_by_layer"]

    def save(self, method: str, model: nn.Module, info: dict[str, Any], macs: dict[str, int]) -> None:
        """Weights and manifest first, ``point.json`` last: only a whole point counts as finished."""
        d = self.dir(method)
        (d / FAILED_FILE).unlink(missing_ok=True)
        save_compressed(d, model, method={k: info.get(k) for k in ("method", "family")})
        write_json(d / POINT_FILE, {"info": info, "macs_by_layer": macs})

    def fail(self, method: str, error: BaseException) -> dict[str, str]:
        """Record that ``method`` raised ``error`` (its first line); the next run tries it again."""
        first = (str(error).strip().splitlines() or [""])[0]
        failure = {"method": method, "error": f"{type(error).__name__}: {first}"}
        write_json(self.dir(method) / FAILED_FILE, failure)
        return failure
