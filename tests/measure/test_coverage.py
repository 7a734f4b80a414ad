"""Do the latency intervals cover what they say? Simulated with the estimator and the stopping
rule as they run: ``time_interleaved`` itself, each call's time drawn from a noise model with a
known ratio (``_time_one`` replaced), so a trial is the protocol end to end, not a copy of it.

The noise models bracket what rounds on these machines look like (log-ratio sd 0.03-0.07 per
round, now and then a call disturbed by 10-40%): Gaussian, a contaminated mixture, and spikes
that slow one call of a pair.
"""

from __future__ import annotations

import numpy as np
import pytest

from torch_impl.measure import latency
from torch_impl.measure.latency import TimingProtocol, aa_check, time_interleaved
from torch_impl.measure.stats import MIN_INTERVAL_ROUNDS, ratio_interval, relative_halfwidth

COVERAGE_MIN = 0.93  # every cell of the coverage table: a nominal 95% interval may not cover less
TRIALS = 300  # seeded draws, so the same on every machine; binomial sd at 0.96 coverage: 1.1 pp
FIXED_ROUNDS = (3, 5, 16, 34)
MAX_HALFWIDTH_34 = 0.06  # an interval that covers by being useless fails here (sd 0.05: ~+-3.5%)
TRUE_RATIO = 0.5


def _noise(kind: str, rng: np.random.Generator) -> float:
    """One call's log-time disturbance; a round's log ratio has about sqrt(2) times its sd."""
    if kind == "gaussian":
        return rng.normal(0, 0.05)
    if kind == "contaminated":  # one call in ten from a 5x wider spread
        return rng.normal(0, 0.2 if rng.random() < 0.1 else 0.035)
    if kind == "spikes":  # one call in twelve slowed by 10-40%
        return rng.normal(0, 0.035) + (np.log(rng.uniform(1.1, 1.4)) if rng.random() < 1 / 12 else 0.0)
    raise ValueError(kind)


def _simulate(monkeypatch, kind: str, protocol: TimingProtocol, seed: int, bias: float = 1.0,
              race: bool = False) -> latency.Rounds:
    rng = np.random.default_rng(seed)
    drift = [1.0]
    speed = {"dense": 1.0, "model": TRUE_RATIO, "aa": bias}

    def fake(call, batch_size):
        drift[0] *= float(np.exp(rng.normal(0, 0.01)))  # the machine's speed wanders between calls
        return speed[call.key] * drift[0] * float(np.exp(_noise(kind, rng)))
    monkeypatch.setattr(latency, "_time_one", fake)

    class Call:
        def __init__(self, key: str) -> None:
            self.key = key

        def __call__(self) -> None:
            return None
    calls = {n: {100: Call(n)} for n in speed}
    return time_interleaved(calls, "dense", protocol=protocol, seed=seed, progress=False, race=race,
                            accuracy={"model": 0.5} if race else None)


def _covered(out: latency.Rounds, name: str, truth: float) -> bool:
    s = out.stats[name][100]
    return bool(s.ratio_lo <= truth <= s.ratio_hi)


def _round_log_ratios(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` rounds' log(model / reference) as ``_simulate`` draws them, without the loop around."""
    return np.array([np.log(TRUE_RATIO) + _noise(kind, rng) - _noise(kind, rng) for _ in range(n)])


@pytest.mark.parametrize("kind", ["gaussian", "contaminated", "spikes"])
def test_fixed_rounds_cover_at_least_the_nominal_rate(kind: str) -> None:
    rng = np.random.default_rng(0)
    for n in FIXED_ROUNDS:
        draws = [np.exp(_round_log_ratios(kind, rng, n)) for _ in range(TRIALS)]
        hits = [lo <= TRUE_RATIO <= hi for _, lo, hi in (ratio_interval(d, np.ones(n)) for d in draws)]
        assert np.mean(hits) >= COVERAGE_MIN, f"{kind}: {n} rounds cover {np.mean(hits):.3f}"
    width = np.median([relative_halfwidth(*ratio_interval(d, np.ones(FIXED_ROUNDS[-1]))) for d in draws])
    assert width < MAX_HALFWIDTH_34


@pytest.mark.slow  # 300 runs of the timing loop per case: 2-3 s each
@pytest.mark.parametrize(("kind", "race"), [("gaussian", False), ("contaminated", False), ("spikes", False),
                                           ("gaussian", True)])
def test_stopping_at_the_target_keeps_the_coverage(monkeypatch, kind: str, race: bool) -> None:
    """Rounds stop as soon as every interval is within +-3% (racing: each model's own); that
    selects runs whose spread looked small, and the interval must still cover."""
    protocol = TimingProtocol(target=0.03, min_rounds=5, max_rounds=60)
    hits, rounds = {"model": [], "aa": []}, []
    for seed in range(TRIALS):
        out = _simulate(monkeypatch, kind, protocol, seed, race=race)
        for name, truth in (("model", TRUE_RATIO), ("aa", 1.0)):
            hits[name].append(_covered(out, name, truth))
        rounds.append(out.rounds)
    for name, h in hits.items():
        assert np.mean(h) >= COVERAGE_MIN, f"{kind}: stopped at the target, {name}'s interval covers {np.mean(h):.3f}"
    assert np.median(rounds) < 60  # the target was reachable: stopping, not the cap, ended most trials


def test_too_few_rounds_give_no_interval_and_no_aa_verdict(monkeypatch) -> None:
    out = _simulate(monkeypatch, "gaussian", TimingProtocol(min_rounds=1, max_rounds=MIN_INTERVAL_ROUNDS - 1), 0)
    s = out.stats["model"][100]
    assert np.isnan(s.ratio_lo) and np.isnan(s.ratio_hi) and abs(s.ratio / TRUE_RATIO - 1) < 0.2
    assert "too few rounds" in aa_check(out.stats["aa"])
    assert "excludes" not in aa_check(out.stats["aa"])
    assert np.isnan(ratio_interval([1.0, 1.1], [2.0, 2.0])[1])


def test_the_aa_check_fires_on_an_injected_bias_and_not_without_one(monkeypatch) -> None:
    protocol = TimingProtocol(min_rounds=34, max_rounds=34)
    biased = [aa_check(_simulate(monkeypatch, "gaussian", protocol, seed, bias=1.12).stats["aa"])
              for seed in range(20)]
    clean = [aa_check(_simulate(monkeypatch, "gaussian", protocol, seed).stats["aa"]) for seed in range(20)]
    assert sum(m is not None and "excludes 1.0" in m for m in biased) >= 18  # 12% slower: seen nearly always
    assert sum(m is not None for m in clean) <= 2  # a 95% interval: about one in twenty, by chance
