"""One measured model, as the sweep and the comparison both record it.

A ``Result`` is what the report, its answers and the tables read: they select rows by what
was done to the model (``settings``: the rule, the budget, the mode, ...), never by the
display name in ``method``. On disk (CSV, JSON) a result is one flat row, ``to_row``; the
JAX sweep writes the same keys without importing this module, and ``from_row`` reads both.

Latency (``torch_impl.measure.latency``): ``latency_us[b]`` is the median per-example time at batch
size ``b``; ``latency_ratio[b]`` is this model's time over the dense model's, from interleaved
rounds (below 1: faster than dense), with its 95% interval in ``latency_ratio_lo/hi``.
Accuracy: ``test_acc`` and, where decisions are made, ``val_acc``; differences to dense with
their intervals and McNemar p-values sit in ``measured`` (``torch_impl.measure.stats``).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch_impl.files import atomic_path, write_json

# Keys of a row that say how the model was made; every other unknown key is a measurement.
SETTING_KEYS = ("framework", "pooling", "mode", "rank_fraction", "ranks", "rule", "energy", "mlp_budget", "data_aware",
                "ranks_from", "conv_ranks", "channels", "pool_fold", "pruned", "int8", "finetune_steps",
                "distilled", "finetune_schedule", "nested_fraction", "latency_of_mlp_budget", "init",
                "deploy_model", "precision", "runtime")
_LATENCY = re.compile(r"latency_(us|iqr_us|ratio|ratio_lo|ratio_hi)_b(\d+)$")
_FIELDS = ("method", "family", "test_acc", "val_acc", "total_macs", "mlp_macs", "params", "bytes")
CONTROL_FAMILY = "A/A control"  # a copy of the dense model, timed as if it were another method


@dataclass
class Result:
    method: str  # display name, e.g. "SVD f=0.2" or "factorized f=0.5"
    family: str  # the group it is drawn with: "dense", "factorized", "plain SVD", ...
    test_acc: float
    latency_us: dict[int, float] = field(default_factory=dict)
    latency_iqr_us: dict[int, float] = field(default_factory=dict)
    latency_ratio: dict[int, float] = field(default_factory=dict)
    latency_ratio_lo: dict[int, float] = field(default_factory=dict)
    latency_ratio_hi: dict[int, float] = field(default_factory=dict)
    val_acc: float | None = None
    total_macs: int = 0
    mlp_macs: int = 0
    params: int = 0
    bytes: int | None = None  # parameters and buffers as stored
    # params counts weights as stored: an int8 layer's packed weight counts its elements
    settings: dict[str, Any] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)  # e.g. val_acc_before_finetune, linear_zero_share

    def ratio(self, batch_size: int | None = None) -> float:
        """Time over the dense model's at ``batch_size`` (default: the largest timed)."""
        return self.latency_ratio[batch_size if batch_size is not None else max(self.latency_ratio)]

    def ratio_interval(self, batch_size: int | None = None) -> tuple[float, float]:
        b = batch_size if batch_size is not None else max(self.latency_ratio)
        return self.latency_ratio_lo[b], self.latency_ratio_hi[b]

    def get(self, key: str, default: Any = None) -> Any:
        """A setting or a further measurement by its row key."""
        return self.settings.get(key, self.measured.get(key, default))

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {k: getattr(self, k) for k in _FIELDS}
        for kind, values in self._latency_dicts().items():
            for b, v in values.items():
                row[f"latency_{kind}_b{b}"] = v
        return {**row, **self.settings, **self.measured}

    def _latency_dicts(self) -> dict[str, dict[int, float]]:
        return {"us": self.latency_us, "iqr_us": self.latency_iqr_us, "ratio": self.latency_ratio,
                "ratio_lo": self.latency_ratio_lo, "ratio_hi": self.latency_ratio_hi}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Result:
        """A row written by ``to_row`` or by the JAX sweep (which names no method or family)."""
        out = cls(method=row.get("method") or sweep_method(row.get("mode", "dense"), row.get("rank_fraction")),
                  family=row.get("family") or row.get("mode", "dense"), test_acc=row["test_acc"])
        for key, value in row.items():
            if m := _LATENCY.match(key):
                out._latency_dicts()[m.group(1)][int(m.group(2))] = value
            elif key in ("method", "family", "test_acc"):
                continue
            elif key in _FIELDS:
                setattr(out, key, value)
            elif key in SETTING_KEYS:
                out.settings[key] = value
            else:
                out.measured[key] = value
        return out


def sweep_method(mode: str, fraction: float | None) -> str:
    return "dense" if mode == "dense" else f"{mode} f={fraction:g}"


def find(results: list[Result], **settings: Any) -> list[Result]:
    """The results whose settings have these values (a missing setting counts as None)."""
    return [r for r in results if all(r.settings.get(k) == v for k, v in settings.items())]


def dense_of(results: list[Result]) -> Result | None:
    return next((r for r in results if r.family == "dense"), None)


def control_of(results: list[Result]) -> Result | None:
    return next((r for r in results if r.family == CONTROL_FAMILY), None)


def candidates(results: list[Result]) -> list[Result]:
    """The compressed models: neither the dense model nor its A/A control."""
    return [r for r in results if r.family not in ("dense", CONTROL_FAMILY)]


CSV_FIELDS = ("method", "family", "framework", "pooling", "mode", "rank_fraction", "test_acc", "test_diff",
              "test_diff_lo", "test_diff_hi", "test_mcnemar_p", "latency_ratio_b10000", "latency_ratio_lo_b10000",
              "latency_ratio_hi_b10000", "latency_us_b10000", "latency_iqr_us_b10000", "latency_ratio_b1",
              "latency_ratio_lo_b1", "latency_ratio_hi_b1", "latency_us_b1", "latency_iqr_us_b1",
              "roofline_fraction_b10000", "roofline_fraction_b1", "params", "bytes", "mlp_macs", "total_macs", "ranks")


def _ranks_text(ranks: list | dict | None) -> str:
    """Ranks as one CSV cell: ``3000 dense 8`` (a list) or ``classifier.0:64 ...`` (a dict)."""
    if ranks is None:
        return ""
    if isinstance(ranks, dict):
        return " ".join(f"{k}:{'dense' if v is None else v}" for k, v in ranks.items())
    return " ".join("dense" if x is None else str(x) for x in ranks)


def write_results(rows: list[dict[str, Any]], out_dir: str | Path, meta: dict[str, Any],
                  stem: str = "sweep") -> tuple[Path, Path]:
    """``<stem>.csv`` (one row per point) and ``<stem>.json`` (rows plus provenance)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fields = list(CSV_FIELDS) + sorted({k for r in rows for k in r} - set(CSV_FIELDS))
    csv_path, json_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.json"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({**r, "ranks": _ranks_text(r.get("ranks"))})
    write_json(json_path, {**meta, "rows": rows})
    return csv_path, json_path
