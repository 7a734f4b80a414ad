"""The latency protocol: interleaved rounds, its stopping rules, the A/A check, the roofline.

Timings here are synthetic where a claim depends on their values (``_time_one`` replaced by
draws with a known ratio), so the tests check the protocol, not the machine.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import TinyNet
from torch_impl.factorize import compress_model
from torch_impl.measure import latency
from torch_impl.measure.latency import LatencyStats, TimingProtocol, aa_check, time_interleaved, torch_calls
from torch_impl.measure.roofline import Roofline, measure_roofline, roofline_fraction, weight_bytes_read
from torch_impl.measure.round_journal import PROTOCOL_VERSION, RoundJournal
from torch_impl.measure.stats import ratio_interval, relative_halfwidth

# One step of the drift below moves the speed by at most 0.5/12/1.0 = 4% between adjacent
# calls; random pair order makes that symmetric, and over 10+ rounds the trimmed mean is
# within a few percent of the truth (measured: 0.8% off).
DRIFT_BIAS = 0.03


def synthetic(monkeypatch, speed: dict[str, float], noise: float, seed: int = 0) -> list[tuple[str, int]]:
    """Replace each call's timing by ``speed[name]`` seconds times lognormal noise; returns the call log."""
    rng, log = np.random.default_rng(seed), []

    def fake(call, batch_size):
        log.append(call.key)
        return speed[call.key[0]] * float(np.exp(rng.normal(0, noise)))
    monkeypatch.setattr(latency, "_time_one", fake)
    return log


def calls_for(names: list[str], batch_sizes=(100, 1)) -> dict:
    class Call:
        def __init__(self, key):
            self.key = key

        def __call__(self):
            return None
    return {n: {b: Call((n, b)) for b in batch_sizes} for n in names}


def test_each_round_times_every_model_once_beside_the_reference(monkeypatch) -> None:
    """At batch 100 one call per model per round; at batch 1 ``queries`` single calls; every call
    right beside one of the reference's at the same batch size."""
    log = synthetic(monkeypatch, {"dense": 1.0, "a": 0.5, "b": 0.2}, noise=0.01)
    queries = 10
    out = time_interleaved(calls_for(["dense", "a", "b"]), "dense",
                           protocol=TimingProtocol(min_rounds=4, max_rounds=4, queries=queries), progress=False)
    per_round = 2 * 2 * (1 + queries)  # two other models x (one call at 100, the queries at 1), each beside dense's
    rounds = [log[i: i + per_round] for i in range(0, 4 * per_round, per_round)]
    assert out.rounds == 4 and len(log) == 4 * per_round
    orders = set()
    for r in rounds:
        pairs = [r[i: i + 2] for i in range(0, per_round, 2)]
        assert all(len({k[1] for k in p}) == 1 and ("dense", p[0][1]) in p for p in pairs)  # same batch, one is dense
        others = sorted(k for p in pairs for k in p if k[0] != "dense")
        assert others == sorted([("a", 100), ("b", 100)] + [("a", 1), ("b", 1)] * queries)
        orders.add(tuple(r))
        assert out.times["dense"][100]
    assert len(orders) > 1  # the order changes between rounds
    firsts = {p[0][0] == "dense" for r in rounds for p in (r[i: i + 2] for i in range(0, per_round, 2))}
    assert firsts == {True, False}  # the reference goes first in some pairs, second in others
    assert len(out.times["dense"][100]) == 4 * 2 and len(out.paired["a"][100]) == 4
    assert len(out.tails["a"][1]) == 4 and 1 not in out.tails.get("dense", {}) and 100 not in out.tails["a"]


def test_batch_one_reports_p50_and_p90_of_the_queries_each_against_the_reference(monkeypatch) -> None:
    """A model as fast as dense in the median but with one query in five 3x slower: its p50 ratio
    reads 1.0 and its p90 ratio 3.0 (the 90th percentile falls among the slow queries); dense's
    own queries are steady, so its p90 is its p50."""
    count = {"spiky": 0}

    def fake(call, batch_size):
        name = call.key[0]
        if name == "spiky" and batch_size == 1:
            count["spiky"] += 1
            return 3e-3 if count["spiky"] % 5 == 0 else 1e-3
        return 1e-3 if batch_size == 1 else 0.1
    monkeypatch.setattr(latency, "_time_one", fake)
    out = time_interleaved(calls_for(["dense", "spiky"]), "dense",
                           protocol=TimingProtocol(min_rounds=3, max_rounds=3, queries=20), progress=False)
    s, d = out.stats["spiky"][1], out.stats["dense"][1]
    assert s.ratio == pytest.approx(1.0) and s.per_example_us == pytest.approx(1000.0)
    assert s.p90_ratio == pytest.approx(3.0) and s.p90_us == pytest.approx(3000.0)
    assert d.p90_us == pytest.approx(1000.0) and d.p90_ratio == 1.0
    assert np.isnan(out.stats["spiky"][100].p90_ratio)  # a large batch has no queries


def test_drift_within_a_round_cancels_beside_the_reference(monkeypatch) -> None:
    """The machine's speed swings by up to 2x (slowly: a cycle lasts ~75 calls, ~9 rounds), the
    kind of drift that made ratios of calls far apart in a round noisy; adjacent pairs recover
    the true ratios to +-3%, and the A/A copy reads 1.0. The control: the same model's calls
    over the reference's call beside *another* model in the same round: wider than +-3%."""
    count = [0]

    def drifting(call, batch_size):
        count[0] += 1
        return {"dense": 1.0, "half": 0.5, "copy": 1.0}[call.key[0]] * (1.5 + 0.5 * np.sin(count[0] / 12))
    monkeypatch.setattr(latency, "_time_one", drifting)
    out = time_interleaved(calls_for(["dense", "half", "copy"]), "dense",
                           protocol=TimingProtocol(target=0.03, min_rounds=10, max_rounds=30), progress=False)
    assert out.stopped_by == "target", out.worst_halfwidth
    half, copy = out.stats["half"][100], out.stats["copy"][100]
    assert half.ratio_lo <= 0.5 * (1 + DRIFT_BIAS) and half.ratio_hi >= 0.5 * (1 - DRIFT_BIAS)
    assert abs(half.ratio / 0.5 - 1) <= DRIFT_BIAS and abs(copy.ratio - 1) <= DRIFT_BIAS
    assert out.ratio("half", "copy", 100)[0] == pytest.approx(0.5, rel=2 * DRIFT_BIAS)
    far = ratio_interval(out.times["half"][100], out.paired["copy"][100])
    assert relative_halfwidth(*far) > 0.03


def test_ratios_and_intervals_recover_a_known_speed_up(monkeypatch) -> None:
    # noise 0.03 per call: the +-3% target is reached in about 30 of the 60 rounds allowed
    synthetic(monkeypatch, {"dense": 1.0, "half": 0.5, "copy": 1.0}, noise=0.03)
    out = time_interleaved(calls_for(["dense", "half", "copy"]), "dense",
                           protocol=TimingProtocol(target=0.03), progress=False)
    half, copy = out.stats["half"][100], out.stats["copy"][100]
    assert out.stopped_by == "target" and out.warning() is None
    assert half.ratio_lo <= 0.5 <= half.ratio_hi and (half.ratio_hi - half.ratio_lo) / 2 / half.ratio <= 0.03
    assert aa_check(out.stats["copy"]) is None and copy.ratio_lo <= 1.0 <= copy.ratio_hi
    assert out.stats["dense"][100].ratio == 1.0 and out.stats["half"][100].per_example_us == pytest.approx(
        5000, rel=0.05)


def test_noise_beyond_the_target_is_reported_not_hidden(monkeypatch) -> None:
    synthetic(monkeypatch, {"dense": 1.0, "a": 0.5}, noise=0.5)
    out = time_interleaved(calls_for(["dense", "a"]), "dense",
                           protocol=TimingProtocol(min_rounds=3, max_rounds=6), progress=False)
    assert out.stopped_by == "max rounds" and out.rounds == 6
    assert "WARNING" in out.warning() and "max rounds" in out.warning()
    capped = time_interleaved(calls_for(["dense", "a"]), "dense",
                              protocol=TimingProtocol(time_cap_s=1e-9), progress=False)
    assert capped.stopped_by == "time cap" and capped.rounds == 1 and "--time-cap" in capped.warning()


def test_a_killed_timing_run_continues_its_kept_rounds(monkeypatch, tmp_path) -> None:
    synthetic(monkeypatch, {"dense": 1.0, "a": 0.5, "b": 0.3}, noise=0.2)
    journal = RoundJournal(tmp_path / "rounds.jsonl", ["dense", "a"], [100, 1])
    first = time_interleaved(calls_for(["dense", "a"]), "dense",
                             protocol=TimingProtocol(min_rounds=3, max_rounds=3), progress=False,
                             journal=journal)
    with open(journal.path, "a") as f:
        f.write('{"seconds": {"dense": {"100"')  # a round a kill cut short
    again = time_interleaved(calls_for(["dense", "a"]), "dense",
                             protocol=TimingProtocol(min_rounds=5, max_rounds=5), progress=False,
                             journal=journal)
    assert again.rounds == 5 and again.times["a"][100][:3] == first.times["a"][100]  # 3 kept + 2 new
    assert len(journal.read()) == 5
    other = RoundJournal(journal.path, ["dense", "b"], [100, 1])  # other models: the file starts anew
    assert other.read() == []
    out = time_interleaved(calls_for(["dense", "b"]), "dense",
                           protocol=TimingProtocol(min_rounds=2, max_rounds=2), progress=False,
                           journal=other)
    assert out.rounds == 2 and len(other.read()) == 2


def test_an_aa_interval_that_excludes_one_is_loud() -> None:
    ok = {100: LatencyStats(100, 1.0, 0.1, 1.01, 0.98, 1.04, 10)}
    bad = {100: LatencyStats(100, 1.0, 0.1, 1.08, 1.05, 1.11, 10)}
    assert aa_check(ok) is None
    assert "WARNING" in aa_check(bad) and "excludes 1.0" in aa_check(bad)


def test_bad_protocol_settings_are_named() -> None:
    with pytest.raises(ValueError, match="reference 'x' is not among"):
        time_interleaved(calls_for(["dense"]), "x")
    with pytest.raises(ValueError, match="min_rounds <= max_rounds"):
        time_interleaved(calls_for(["dense"]), "dense", protocol=TimingProtocol(min_rounds=5, max_rounds=2))
    with pytest.raises(ValueError, match="batch size 41 needs 1..40 images"):
        torch_calls(TinyNet(), torch.zeros(40, 32, 32, 3, dtype=torch.uint8), [41])


def test_real_calls_are_timed_per_batch_size() -> None:
    images = torch.randint(0, 256, (40, 32, 32, 3), dtype=torch.uint8)
    out = time_interleaved({"dense": torch_calls(TinyNet(), images, [40, 1]),
                            "other": torch_calls(TinyNet(), images, [40, 1])}, "dense",
                                                 protocol=TimingProtocol(min_rounds=2, max_rounds=2), progress=False)
    assert set(out.stats["other"]) == {40, 1} and all(s.per_example_us > 0 for s in out.stats["other"].values())
    assert "interleaved rounds" in out.method and "channels-last" in out.method


def test_a_large_batch_is_sliced_into_the_same_images_once_each(monkeypatch) -> None:
    images = torch.randint(0, 256, (40, 32, 32, 3), dtype=torch.uint8)
    net = TinyNet().eval()
    calls = torch_calls(net, images, [40, 16, 1], slice_rows=16)
    assert len(calls[40].slices) == 3 and not hasattr(calls[16], "slices") and not hasattr(calls[1], "slices")
    seen = []
    monkeypatch.setattr(latency, "predict", lambda model, batch, chunk: seen.append(batch))
    for part in calls[40].slices:
        part()
    assert [len(x) for x in seen] == [16, 16, 8] and torch.equal(torch.cat(seen), images)
    whole = torch_calls(net, images, [40], chunk=None, slice_rows=16)[40]
    assert not hasattr(whole, "slices"), "a model run whole (chunk=None: a GPU, the plain yardstick) is not sliced"


def test_a_sliced_pair_alternates_slice_by_slice_and_sums_each_side(monkeypatch) -> None:
    """Drift within a pair's seconds cancels: the two models alternate every slice, in a random
    order per slice, and each model's time is the sum of its own slices'."""
    log = []

    def fake(call, batch_size):
        log.append(call.key)
        return {"dense": 0.3, "half": 0.15}[call.key[0]]
    monkeypatch.setattr(latency, "_time_one", fake)
    calls = calls_for(["dense", "half"], batch_sizes=(100,))
    for name, per_batch in calls.items():  # four slices each, keyed (name, slice index)
        per_batch[100].slices = list(calls_for([name], batch_sizes=range(4))[name].values())
    out = time_interleaved(calls, "dense", protocol=TimingProtocol(min_rounds=6, max_rounds=6), progress=False)
    assert len(log) == 6 * 4 * 2
    pairs = [log[i: i + 2] for i in range(0, len(log), 2)]
    assert all(sorted(k[0] for k in p) == ["dense", "half"] and p[0][1] == p[1][1] for p in pairs)  # same slice
    assert [p[0][1] for p in pairs[:4]] == [0, 1, 2, 3]
    assert {p[0][0] for p in pairs} == {"dense", "half"}  # either model goes first in some slices
    assert out.times["half"][100] == pytest.approx([0.6] * 6) and out.paired["half"][100] == pytest.approx([1.2] * 6)
    assert out.stats["half"][100].ratio == pytest.approx(0.5)


def test_relayout_moves_every_weight_and_keeps_the_outputs() -> None:
    from torch_impl.factorize import dynamic_int8

    images = torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8)
    for model in (TinyNet().eval(), compress_model(TinyNet(), rank_fraction=0.5)[0].eval(), dynamic_int8(TinyNet())):
        with torch.inference_mode():
            before = model(images)
        # the stored tensors themselves: a quantized model's state_dict makes temporaries, whose
        # addresses can repeat by chance
        stored = lambda: {n: t.data_ptr() for n, t in [*model.named_parameters(), *model.named_buffers()]}
        ptrs = stored()
        latency.relayout(model)
        moved = stored()
        assert all(moved[n] != ptrs[n] for n in ptrs), "a weight stayed where it was"
        with torch.inference_mode():
            torch.testing.assert_close(model(images), before, rtol=0, atol=0)


def test_a_reconstructed_layer_keeps_its_formed_product_through_a_relayout(monkeypatch) -> None:
    """The product B @ A is formed once for inference; moving the factors must not make the next
    timed call form it again (it would charge the reconstructed model ~2-10% of a call per round)."""
    from torch_impl.lowrank import LowRankLinear

    model = compress_model(TinyNet(), rank_fraction=0.5, mode="reconstructed")[0].eval()
    layer = next(m for m in model.modules() if isinstance(m, LowRankLinear))
    formed, form = [], layer.reconstructed_weight
    monkeypatch.setattr(layer, "reconstructed_weight", lambda: formed.append(1) or form())
    images = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    with torch.inference_mode():
        before = model(images)
        latency.relayout(model)
        after = model(images)
    assert len(formed) == 1 and torch.equal(after, before)
    with torch.no_grad():  # a real change of the factors still forms it again
        layer.A.mul_(2.0)
    with torch.inference_mode():
        model(images)
    assert len(formed) == 2


def test_every_round_starts_by_relaying_each_model_once(monkeypatch) -> None:
    synthetic(monkeypatch, {"dense": 1.0, "a": 0.5}, noise=0.01)
    calls, count = calls_for(["dense", "a"]), {"dense": 0, "a": 0}
    for name, per_batch in calls.items():
        hook = (lambda n: lambda: count.__setitem__(n, count[n] + 1))(name)
        for c in per_batch.values():
            c.relayout = hook
    time_interleaved(calls, "dense", protocol=TimingProtocol(min_rounds=3, max_rounds=3), progress=False)
    assert count == {"dense": 3, "a": 3}


def test_roofline_bound_and_fraction() -> None:
    roof = Roofline(gemm_flops_per_s=1e11, read_bytes_per_s=1e10, copy_bytes_per_s=1e9, gemm_n=1, buffer_bytes=1,
                    device="cpu")
    # 1e6 MACs x 100 examples = 2e8 FLOP -> 2 ms; 1e6 weight bytes + 100 x 3,112 bytes -> 0.13 ms
    assert roofline_fraction(roof, 10**6, 10**6, 100, per_example_us=40.0) == pytest.approx(0.5)
    # batch 1: bytes bound, (1e6 + 3,112) / 1e10 s = 100.3112 us
    assert roofline_fraction(roof, 10**6, 10**6, 1, per_example_us=200.6224) == pytest.approx(0.5)
    measured = measure_roofline("cpu", buffer_bytes=2**23, gemm_n=256, min_run_s=0.05)
    assert measured.gemm_flops_per_s > 1e8 and measured.read_bytes_per_s > 1e8 and measured.copy_bytes_per_s > 1e8


def test_a_reconstructed_layer_reads_a_dense_weight() -> None:
    net = TinyNet()
    factorized, _ = compress_model(net, rank_fraction=0.5)
    reconstructed, _ = compress_model(net, rank_fraction=0.5, mode="reconstructed")
    dense_bytes = weight_bytes_read(net)
    assert weight_bytes_read(reconstructed) == dense_bytes
    assert weight_bytes_read(factorized) == dense_bytes - 3072 * 10 * 4 + 5 * (3072 + 10) * 4


def test_racing_stops_timing_what_is_settled_and_keeps_lists_as_prefixes(monkeypatch) -> None:
    """A quiet model reaches the target early and stops; a noisy one goes on alone; a model
    slower than dense and less accurate on validation is retired as off the front; the control
    (no accuracy given) retires only by its interval."""
    rng = np.random.default_rng(0)
    noise = {"dense": 0.002, "quiet": 0.002, "noisy": 0.05, "slow": 0.03, "copy": 0.002}

    def fake(call, batch_size):
        name = call.key[0]
        return {"dense": 1.0, "quiet": 0.5, "noisy": 0.3, "slow": 1.5, "copy": 1.0}[name] * float(
            np.exp(rng.normal(0, noise[name])))
    monkeypatch.setattr(latency, "_time_one", fake)
    accuracy = {"dense": 0.70, "quiet": 0.69, "noisy": 0.60, "slow": 0.50}
    out = time_interleaved(calls_for(list(noise)), "dense",
                           protocol=TimingProtocol(target=0.03, min_rounds=5, max_rounds=150),
                           progress=False, race=True, accuracy=accuracy, labels={"dense": "the dense model"})
    assert out.stopped_by == "target" and out.warning() is None
    assert 0 < out.worst_halfwidth <= 0.03  # over the models timed to the target, not the ones left
    assert "the dense model is at least as accurate" in out.retired["slow"]
    assert "within +-3%" in out.retired["quiet"] and "within +-3%" in out.retired["copy"]
    assert out.retired["slow"].startswith("off the front") and "after 5 rounds" in out.retired["slow"]
    assert "within +-3%" in out.retired["noisy"]
    n = {k: len(out.times[k][100]) for k in ("quiet", "noisy", "slow", "copy")}
    assert n["slow"] == n["quiet"] == n["copy"] == 5 < n["noisy"] == out.rounds
    assert out.stats["quiet"][100].rounds == 5 and out.stats["noisy"][100].rounds == out.rounds
    assert len(out.times["dense"][100]) == 4 * 5 + (out.rounds - 5)  # one reference call per timed model
    half = out.ratio("noisy", "quiet", 100)  # over the 5 rounds both were timed in
    assert half[1] <= 0.6 <= half[2]


def test_without_racing_every_model_is_timed_every_round(monkeypatch) -> None:
    synthetic(monkeypatch, {"dense": 1.0, "quiet": 0.5, "slow": 1.5}, noise=0.01)
    out = time_interleaved(calls_for(["dense", "quiet", "slow"]), "dense",
                           protocol=TimingProtocol(min_rounds=6, max_rounds=6),
                           progress=False, accuracy={"dense": 0.7, "quiet": 0.7, "slow": 0.1})
    assert out.retired == {} and all(len(out.times[k][100]) == 6 for k in ("quiet", "slow"))


def test_a_resumed_race_keeps_the_retired_models_retired(monkeypatch, tmp_path) -> None:
    synthetic(monkeypatch, {"dense": 1.0, "quiet": 0.5, "noisy": 0.3}, noise=0.002)
    journal = RoundJournal(tmp_path / "rounds.jsonl", ["dense", "quiet", "noisy"], [100, 1])
    first = time_interleaved(calls_for(["dense", "quiet", "noisy"]), "dense",
                             protocol=TimingProtocol(min_rounds=5, max_rounds=5),
                             progress=False, journal=journal, race=True)
    assert first.rounds == 5 and len(journal.read()) == 5
    log = synthetic(monkeypatch, {"dense": 1.0, "quiet": 0.5, "noisy": 0.3}, noise=0.002)
    again = time_interleaved(calls_for(["dense", "quiet", "noisy"]), "dense",
                             protocol=TimingProtocol(min_rounds=5, max_rounds=9),
                             progress=False, journal=journal, race=True)
    assert again.rounds == 5 and again.stopped_by == "target" and set(again.retired) == {"quiet", "noisy"}
    assert log == []  # no call timed: nothing was left to decide


def test_rounds_of_another_protocol_are_never_merged(tmp_path) -> None:
    journal = RoundJournal(tmp_path / "rounds.jsonl", ["dense", "a"], [100])
    journal.start([{"seconds": {"a": {100: 0.5}}, "paired": {"a": {100: 1.0}}, "reference": {100: [1.0]}}])
    assert len(journal.read()) == 1
    header, *rest = journal.path.read_text().splitlines()
    for old in (json.loads(header) | {"version": 2},  # another version's rounds
                {k: v for k, v in json.loads(header).items() if k != "version"}):  # from before versions
        journal.path.write_text("\n".join([json.dumps(old), *rest]) + "\n")
        fresh = RoundJournal(journal.path, ["dense", "a"], [100])
        assert fresh.read() == [] and "1 round(s) kept" in fresh.refused
        assert f"this run times version {PROTOCOL_VERSION}" in fresh.refused
    journal.path.write_text("\n".join([header, *rest]) + "\n")
    other = RoundJournal(journal.path, ["dense", "b"], [100])
    assert other.read() == [] and "other models" in other.refused


def test_a_model_whose_kept_rounds_stopped_early_is_not_timed_again(monkeypatch, tmp_path) -> None:
    """Its list must stay a prefix of the rounds: a model an interrupted race had retired (fewer
    kept rounds than the run) stays retired on the rerun, whatever the other models now read."""
    log = synthetic(monkeypatch, {"dense": 1.0, "a": 0.5, "b": 0.3}, noise=0.2)
    journal = RoundJournal(tmp_path / "rounds.jsonl", ["dense", "a", "b"], [100])
    def both(b_seconds: float) -> dict:
        return {"seconds": {"a": {100: 0.5}, "b": {100: b_seconds}}, "paired": {"a": {100: 1.0}, "b": {100: 1.0}},
                "reference": {100: [1.0, 1.0]}}
    a_only = {"seconds": {"a": {100: 0.5}}, "paired": {"a": {100: 1.0}}, "reference": {100: [1.0]}}
    journal.start([both(0.3), both(0.45), a_only])  # b's two rounds far apart: no interval within the target
    out = time_interleaved(calls_for(["dense", "a", "b"], batch_sizes=(100,)), "dense",
                           protocol=TimingProtocol(min_rounds=2, max_rounds=6),
                           progress=False, journal=journal, race=True)
    assert "before the run was interrupted" in out.retired["b"] and len(out.times["b"][100]) == 2
    assert all(key[0] != "b" for key in log)  # never timed again
    assert len(out.times["a"][100]) == out.rounds
