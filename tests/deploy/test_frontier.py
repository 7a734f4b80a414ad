"""The deployment frontier's steps on synthetic timings and predictions: screen, score, time."""

from __future__ import annotations

import numpy as np
import pytest

from torch_impl.deploy.combos import Built
from torch_impl.deploy.frontier import AA_KEY, REFERENCE, calls_for, score, screen, screen_limits, time_all
from torch_impl.measure import latency
from torch_impl.measure.latency import TimingProtocol

SPEED = {REFERENCE: 1.0, AA_KEY: 1.0, "dense | fp32 | onnxruntime": 1.2, "small | fp32 | onnxruntime": 0.3,
         "small | int8-static | onnxruntime": 0.12, "small | bf16 | eager": 5.0, "slow only large | fp32 | eager": 3.0}
SMALL_BATCH_SPEED = {"slow only large | fp32 | eager": 0.05}  # fast at batch 1: kept for target C


def _fake_time(monkeypatch) -> None:
    def fake(call, batch_size):
        name = call.key
        return (SMALL_BATCH_SPEED.get(name, SPEED[name]) if batch_size == 1 else SPEED[name]) * batch_size * 1e-4
    monkeypatch.setattr(latency, "_time_one", fake)


def _built(name: str, correct_share: float, labels: np.ndarray) -> Built:
    n_right = int(round(correct_share * len(labels)))

    def predict(x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), 10), dtype=np.float32)
        pred = labels[: len(x)].copy()
        pred[n_right:] = (pred[n_right:] + 1) % 10  # the first n_right images right, the rest wrong
        out[np.arange(len(x)), pred] = 1.0
        return out
    return Built(predict)


def _keyed(calls: dict, name: str) -> dict:
    for c in calls.values():
        c.key = name
        for s in getattr(c, "slices", []):
            s.key = name
    return calls


def test_screen_limits_are_twice_the_most_lenient_budget_or_target_per_batch() -> None:
    assert screen_limits([10_000, 1]) == {10_000: 1.0, 1: 0.1}


def test_the_screen_drops_only_what_is_too_slow_at_every_batch_size(monkeypatch) -> None:
    _fake_time(monkeypatch)
    labels = np.arange(2000) % 10
    images = np.zeros((2000, 32, 32, 3), dtype=np.uint8)
    calls = {n: _keyed(calls_for(_built(n, 1.0, labels), images, [2000, 1]), n) for n in SPEED}
    out = screen(calls, screen_limits([2000, 1]), keep={AA_KEY, "dense | fp32 | onnxruntime"})
    assert set(out) == {"small | bf16 | eager"}  # 5x at both sizes; the fast-at-batch-1 one stays
    assert out["small | bf16 | eager"]["screen_ratio"][2000] == pytest.approx(5.0)
    assert "5.00x dense fp32 eager at batch 2,000 (limit 1x)" in out["small | bf16 | eager"]["why"]


def test_scores_and_ratios_are_against_dense_fp32_eager_and_within_the_runtime(monkeypatch) -> None:
    _fake_time(monkeypatch)
    labels = np.arange(400) % 10
    images = np.zeros((400, 32, 32, 3), dtype=np.uint8)
    shares = {REFERENCE: 0.8, AA_KEY: 0.8, "dense | fp32 | onnxruntime": 0.8, "small | fp32 | onnxruntime": 0.7,
              "small | int8-static | onnxruntime": 0.79}
    built = {n: _built(n, s, labels) for n, s in shares.items()}
    results = score(built, {"val": (images[:200], labels[:200]), "test": (images, labels)}, progress=False)
    small = results["small | fp32 | onnxruntime"]
    assert small.test_acc == pytest.approx(0.7) and small.get("test_diff") == pytest.approx(-0.1)
    assert small.get("test_only_dense") == 40 and small.get("test_mcnemar_p") < 1e-6
    assert results[AA_KEY].family == "A/A control" and results[REFERENCE].family == "dense"
    assert small.family == "onnxruntime" and small.settings["precision"] == "fp32"
    calls = {n: _keyed(calls_for(built[n], images, [400, 1]), n) for n in built}
    rounds = time_all(built, results, images, [400, 1], TimingProtocol(min_rounds=3, max_rounds=3, queries=10),
                      progress=False, calls=calls)
    assert rounds.rounds == 3
    q = results["small | int8-static | onnxruntime"]
    assert q.ratio(400) == pytest.approx(0.12) and q.get("runtime_ratio_b400") == pytest.approx(0.1)
    assert q.latency_ratio[1] == pytest.approx(0.12) and q.get("latency_p90_ratio_b1") == pytest.approx(0.12)
    assert results[AA_KEY].ratio(400) == pytest.approx(1.0) and "runtime_ratio_b400" not in results[AA_KEY].measured
