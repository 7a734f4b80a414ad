"""The deployment frontier: every model x precision x runtime, judged against dense fp32 eager.

A user starts from the dense model in fp32 PyTorch eager; what they can ship is any compressed
model in any precision on any runtime. So every combination (``deploy/combos.py``) is

1. **built**, or recorded with the reason it has no form here (``skipped``);
2. **screened**: one slice of ``SLICE_ROWS`` images and ``SCREEN_QUERIES`` single queries, each
   beside dense fp32 eager's; a combination slower than ``SCREEN_MARGIN`` times the most lenient
   limit any budget or target sets at that batch size (0.5x at batch 10,000, 0.05x at batch 1),
   at both batch sizes, is not scored or timed further: it cannot meet any of them, and one
   screening pair is noisy by far less than 2x. Dense fp32 in each runtime is never screened
   out: it is the reference of its runtime's own ratios;
3. **scored** on the validation images (where choices are made) and the test images (where they
   are judged), each against dense fp32 eager's per-image correctness: paired difference with
   its interval and McNemar's p (precision changes the arithmetic, so every row is measured);
4. **timed** in one set of interleaved rounds, each call beside one of dense fp32 eager's
   (``measure.latency``, racing on validation accuracy), with an A/A control (a copy of dense
   fp32 eager timed as another model). The ratio to dense fp32 eager is the headline; the ratio
   to dense fp32 *in the same runtime* is kept beside it (``runtime_ratio_b*``), and batch 1 is
   ``queries`` single queries per round, p50 with p90 beside it.

Shapes: ``key`` = "model | precision | runtime"; every ``Predict`` maps uint8 ``[N, 32, 32, 3]``
to logits ``[N, 10]``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from torch_impl.deploy.bundle import logits_sha256
from torch_impl.deploy.combos import RUNTIMES, Built, OnnxFiles, build
from torch_impl.deploy.precision import PRECISIONS, Unsupported
from torch_impl.deploy.runtimes import allow_recompiles
from torch_impl.measure import latency
from torch_impl.measure.latency import SLICE_ROWS, Call, Rounds, TimingProtocol, time_interleaved
from torch_impl.measure.results import CONTROL_FAMILY, Result
from torch_impl.measure.stats import accuracy_diff
from torch_impl.measure.targets import Target

DENSE = "dense"
REFERENCE = f"{DENSE} | fp32 | eager"
AA_KEY = f"{DENSE} copy (A/A) | fp32 | eager"
SCREEN_MARGIN = 2.0
SCREEN_QUERIES = 16
TARGETS = (Target("A", 0.20, 0.5), Target("B", 0.10, 1.0), Target("C", 0.05, 1.0, batch="small"),
           Target("D", 0.25, None))
BUDGETS = (0.5, 0.25)  # time over dense fp32 eager's, batch 10,000, upper end of the interval


def screen_limits(batch_sizes: list[int], margin: float = SCREEN_MARGIN) -> dict[int, float]:
    """Per batch size, ``margin`` times the most lenient limit a budget or target sets there."""
    large = max([*BUDGETS, *(t.limit for t in TARGETS if t.batch == "large")])
    small = max(t.limit for t in TARGETS if t.batch == "small")
    return {b: margin * (large if b == max(batch_sizes) else small) for b in batch_sizes}


def key(model: str, precision: str, runtime: str) -> str:
    return f"{model} | {precision} | {runtime}"


@dataclass(frozen=True)
class FrontierConfig:
    """What the frontier covers and how it is timed."""

    precisions: tuple[str, ...] = PRECISIONS
    runtimes: tuple[str, ...] = RUNTIMES
    screen_margin: float = SCREEN_MARGIN
    protocol: TimingProtocol = field(default_factory=TimingProtocol)


def build_all(models: dict[str, nn.Module], config: FrontierConfig, files: OnnxFiles, threads: int,
              progress: bool = True) -> tuple[dict[str, Built], list[dict[str, str]]]:
    """Every (model, precision, runtime) built, dense fp32 eager first, then its A/A copy; and
    the combinations that have no form here, each with why."""
    if DENSE not in models:
        raise ValueError(f"the models need the dense reference under the name {DENSE!r}")
    allow_recompiles(len(models) * len(config.precisions))
    built: dict[str, Built] = {}
    skipped: list[dict[str, str]] = []
    todo = [(n, p, r) for n in models for p in config.precisions for r in config.runtimes]
    todo.sort(key=lambda c: key(*c) != REFERENCE)
    for name, precision, runtime in tqdm(todo, desc="building", unit="form", disable=not progress):
        try:
            built[key(name, precision, runtime)] = build(name, models[name], precision, runtime, files, threads)
        except Unsupported as why:
            skipped.append({"model": name, "precision": precision, "runtime": runtime, "why": str(why)})
        if key(name, precision, runtime) == REFERENCE:
            built[AA_KEY] = build(name, copy.deepcopy(models[name]), "fp32", "eager", files, threads)
    return built, skipped


def calls_for(b: Built, images: np.ndarray, batch_sizes: list[int]) -> dict[int, Call]:
    """``{batch size: call}`` on the first images; a batch above ``SLICE_ROWS`` also as slices
    (which ``time_interleaved`` alternates with the reference's); torch modules relaid out
    between rounds, as ``latency.torch_calls`` does."""
    def make(x: np.ndarray) -> Call:
        call = lambda: b.predict(x)  # noqa: E731
        if b.module is not None:
            call.relayout = lambda: latency.relayout(b.module)
        return call
    out = {}
    for n in batch_sizes:
        call = make(images[:n])
        if n > SLICE_ROWS:
            call.slices = [make(images[i: min(i + SLICE_ROWS, n)]) for i in range(0, n, SLICE_ROWS)]
        out[n] = call
    return out


def screen(calls: dict[str, dict[int, Call]], limits: dict[int, float], keep: set[str], seed: int = 0
           ) -> dict[str, dict[str, Any]]:
    """Combinations slower than ``limits[b]`` x the reference at every batch size ``b`` on one
    screening pair (a slice, and ``SCREEN_QUERIES`` single queries), with their ratios."""
    rng = np.random.default_rng(seed)
    ref = calls[REFERENCE]
    out = {}
    for name, per_b in calls.items():
        if name in keep or name == REFERENCE:
            continue
        ratios = {}
        for n, call in per_b.items():
            r_call, c_call = (ref[n].slices[0], call.slices[0]) if hasattr(call, "slices") else (ref[n], call)
            for _ in range(1 if n > latency.SMALL_BATCH else latency.SMALL_BATCH_WARMUP):  # warm-up
                r_call(), c_call()
            t_ref, t, _ = latency._time_pair(r_call, c_call, n, rng, SCREEN_QUERIES)
            ratios[n] = t / t_ref
        if all(r > limits[n] for n, r in ratios.items()):
            out[name] = {"screen_ratio": ratios, "why": "on its screen " + ", ".join(
                f"{r:.2f}x dense fp32 eager at batch {n:,} (limit {limits[n]:g}x)" for n, r in ratios.items())}
    return out


def score(built: dict[str, Built], splits: dict[str, tuple[np.ndarray, np.ndarray]], progress: bool = True
          ) -> dict[str, Result]:
    """Each combination's accuracy on "val" and "test", paired against dense fp32 eager's."""
    correct: dict[str, dict[str, np.ndarray]] = {}
    results: dict[str, Result] = {}
    for name, b in tqdm(built.items(), desc="scoring", unit="form", disable=not progress):
        model, precision, runtime = name.split(" | ")
        family = "dense" if name == REFERENCE else CONTROL_FAMILY if name == AA_KEY else runtime
        r = Result(name, family, test_acc=float("nan"),
                   settings={"deploy_model": model, "precision": precision, "runtime": runtime})
        r.measured.update(b.notes)
        correct[name] = {}
        for split, (x, y) in splits.items():
            logits = b.predict(x)
            correct[name][split] = logits.argmax(1) == y
            setattr(r, f"{split}_acc", float(correct[name][split].mean()))
            if split == "test":
                r.measured.update(test_logits_sha256=logits_sha256(logits), n_test=len(y))
        results[name] = r
    for name, r in results.items():
        for split in splits:
            r.measured.update(accuracy_diff(correct[name][split], correct[REFERENCE][split]).as_dict(split))
    return results


def time_all(built: dict[str, Built], results: dict[str, Result], images: np.ndarray, batch_sizes: list[int],
             protocol: TimingProtocol, progress: bool = True, calls: dict[str, dict[int, Call]] | None = None
             ) -> Rounds:
    """Every scored combination timed against dense fp32 eager; fills each result's ratios (to
    dense fp32 eager, and ``runtime_ratio_b*`` to dense fp32 in its own runtime) and p90s."""
    calls = {n: (calls or {}).get(n) or calls_for(built[n], images, batch_sizes) for n in results}
    accuracy = {n: r.val_acc for n, r in results.items() if n != AA_KEY and r.val_acc is not None}
    rounds = time_interleaved(calls, REFERENCE, protocol=protocol, progress=progress, race=True, accuracy=accuracy)
    for name, r in results.items():
        if name in rounds.retired:
            r.measured["timing_stopped"] = rounds.retired[name]
        local = key(DENSE, "fp32", r.settings["runtime"])
        for n, st in rounds.stats[name].items():
            r.latency_us[n], r.latency_iqr_us[n] = st.per_example_us, st.iqr_us
            r.latency_ratio[n], r.latency_ratio_lo[n], r.latency_ratio_hi[n] = st.ratio, st.ratio_lo, st.ratio_hi
            if not np.isnan(st.p90_ratio) or name == REFERENCE:
                r.measured.update({f"latency_p90_us_b{n}": st.p90_us, f"latency_p90_ratio_b{n}": st.p90_ratio,
                                   f"latency_p90_ratio_lo_b{n}": st.p90_ratio_lo,
                                   f"latency_p90_ratio_hi_b{n}": st.p90_ratio_hi})
            if local in rounds.stats and name not in (local, AA_KEY):
                mid, lo, hi = rounds.ratio(name, local, n)
                r.measured.update({f"runtime_ratio_b{n}": mid, f"runtime_ratio_lo_b{n}": lo,
                                   f"runtime_ratio_hi_b{n}": hi})
        r.measured.update(threads=rounds.threads, latency_rounds=rounds.rounds)
    return rounds

