"""Timing rounds kept on disk as each completes, so a killed timing run continues where it stopped.

The comparison's timing runs up to 90 minutes of interleaved rounds. Each round is
self-contained: it times every model once per batch size, each beside a call of the
reference, and a model's ratio to the reference is taken within the round. So rounds from
an interrupted run are as good as any, and a rerun can add its rounds to them.
``RoundJournal`` appends one JSON line per finished round (flushed and fsynced) to a file
whose first line names the models and batch sizes; a rerun with the same ones reads the
rounds back and goes on, anything else starts the file anew. A line cut short by a kill is
the last one and is dropped.

Shapes: header ``{"models": [name, ...], "batch_sizes": [B, ...], "protocol": PROTOCOL,
"version": PROTOCOL_VERSION}``; each
round ``{"seconds": {name: {B: s}}, "paired": {name: {B: s}}, "reference": {B: [s, ...]},
"p90": {name: {B: [s, reference's s]}}}`` (p90 only at small batches, where a time is a median of queries):
every model but the reference, its call's seconds and those of the reference's call beside
it; the reference's calls in the order made.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# Rounds timed another way (an older version's layout or protocol) are never merged: bump the
# version whenever what one round measures changes (v1 paired with the reference; v2 sliced
# pairs; v3 relayout before each round and racing; v4 the v3 rounds, the version in the header;
# v5 batch 1 as single queries, p50 with p90 beside it).
PROTOCOL_VERSION = 5
PROTOCOL = "paired-with-reference; sliced pairs; relayout; racing"

Round = dict[str, Any]  # one round's record, batch sizes as ints (see the module's doc)


def _int_keys(per_b: dict) -> dict[int, Any]:
    return {int(b): v for b, v in per_b.items()}


class RoundJournal:
    def __init__(self, path: str | os.PathLike, models: list[str], batch_sizes: list[int]) -> None:
        self.path = Path(path)
        self.header = {"models": list(models), "batch_sizes": [int(b) for b in batch_sizes], "protocol": PROTOCOL,
                       "version": PROTOCOL_VERSION}
        self.refused: str | None = None  # why ``read`` found rounds it would not use

    def read(self) -> list[Round]:
        """The finished rounds of an earlier run with the same models and batch sizes, else none."""
        if not self.path.is_file():
            return []
        lines = self.path.read_text().splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except ValueError:
            header = {}
        if header != self.header:
            if len(lines) > 1:
                self.refused = (f"{len(lines) - 1} round(s) kept in {self.path} are not used: "
                                + self._difference(header if isinstance(header, dict) else {}))
            return []
        rounds = []
        for line in lines[1:]:
            try:
                raw = json.loads(line)
                rounds.append({"seconds": {n: _int_keys(v) for n, v in raw["seconds"].items()},
                               "paired": {n: _int_keys(v) for n, v in raw["paired"].items()},
                               "reference": _int_keys(raw["reference"]),
                               "p90": {n: _int_keys(v) for n, v in raw.get("p90", {}).items()}})
            except (ValueError, KeyError, TypeError, AttributeError):
                break  # the line a kill cut short
        return rounds

    def _difference(self, header: dict) -> str:
        if header.get("version") != PROTOCOL_VERSION or header.get("protocol") != PROTOCOL:
            return (f"timed under protocol version {header.get('version', 'unversioned (before 4)')}, "
                    f"this run times version {PROTOCOL_VERSION}")
        return "they time other models or batch sizes"

    def start(self, rounds: list[Round]) -> None:
        """Begin writing: keep ``rounds`` (those ``read`` returned and the run uses), or start anew."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(self.header) + "\n")
            for r in rounds:
                f.write(json.dumps(r) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def append(self, record: Round) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def remove(self) -> None:
        """Once the run's results are written, the rounds live there; a later run starts anew."""
        self.path.unlink(missing_ok=True)
