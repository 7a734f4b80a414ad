"""Timing rounds kept on disk as each completes, so a killed timing run continues where it stopped.

The comparison's timing runs up to 90 minutes of interleaved rounds. Each round is
self-contained: it times every model once per batch size, and a model's ratio to the
reference is taken within the round. So rounds from an interrupted run are as good as any,
and a rerun can add its rounds to them. ``RoundJournal`` appends one JSON line per finished
round (flushed and fsynced) to a file whose first line names the models and batch sizes; a
rerun with the same models and batch sizes reads the rounds back and goes on, anything else
starts the file anew. A line cut short by a kill is the last one and is dropped.

Shapes: header ``{"models": [name, ...], "batch_sizes": [B, ...]}``; each round
``{"seconds": {name: {B: seconds per call}}}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class RoundJournal:
    def __init__(self, path: str | os.PathLike, models: list[str], batch_sizes: list[int]) -> None:
        self.path = Path(path)
        self.header = {"models": list(models), "batch_sizes": [int(b) for b in batch_sizes]}

    def read(self) -> list[dict[str, dict[int, float]]]:
        """The finished rounds of an earlier run with the same models and batch sizes, else none."""
        if not self.path.is_file():
            return []
        lines = self.path.read_text().splitlines()
        try:
            if not lines or json.loads(lines[0]) != self.header:
                return []
        except ValueError:
            return []
        rounds = []
        for line in lines[1:]:
            try:
                seconds = json.loads(line)["seconds"]
            except (ValueError, KeyError, TypeError):
                break  # the line a kill cut short
            rounds.append({name: {int(b): float(t) for b, t in per_b.items()} for name, per_b in seconds.items()})
        return rounds

    def start(self, rounds: list[dict[str, dict[int, float]]]) -> None:
        """Begin writing: keep ``rounds`` (those ``read`` returned and the run uses), or start anew."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(self.header) + "\n")
            for r in rounds:
                f.write(json.dumps({"seconds": r}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def append(self, seconds: dict[str, dict[int, float]]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"seconds": seconds}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def remove(self) -> None:
        """Once the run's results are written, the rounds live there; a later run starts anew."""
        self.path.unlink(missing_ok=True)
