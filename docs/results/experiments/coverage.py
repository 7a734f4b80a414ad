"""The latency intervals' coverage table: rounds x noise model, fixed rounds and stopped at the target.

    python docs/results/experiments/coverage.py [trials]     # default 1000 per cell (a few minutes)

Each cell is the share of simulated runs whose reported 95% interval contains the true ratio,
with the estimator and the stopping rule as they run (tests/measure/test_coverage.py's
simulation: the timing loop itself, each call's time drawn from a noise model). The test
asserts every cell >= 0.93 at 300 trials; this prints them at more.
"""

from __future__ import annotations

import sys

import numpy as np

from tests.measure import test_coverage as sim
from torch_impl.measure.latency import TimingProtocol
from torch_impl.measure.stats import RATIO_LEVEL, ratio_interval


class Patch:  # what pytest's monkeypatch does here, without pytest
    def setattr(self, obj, name, value):
        setattr(obj, name, value)


def main(trials: int) -> None:
    kinds = ("gaussian", "contaminated", "spikes")
    cols = [*(f"{n} rounds" for n in sim.FIXED_ROUNDS), "stopped at +-3%", "stopped, racing", "median rounds"]
    print(f"interval computed at {RATIO_LEVEL:.0%}, reported as 95%; {trials} trials per cell\n")
    print("| noise | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols))
    for kind in kinds:
        rng, cells = np.random.default_rng(0), []
        for n in sim.FIXED_ROUNDS:
            hits = [lo <= sim.TRUE_RATIO <= hi for _, lo, hi in
                    (ratio_interval(np.exp(sim._round_log_ratios(kind, rng, n)), np.ones(n)) for _ in range(trials))]
            cells.append(f"{np.mean(hits):.3f}")
        for race in (False, True):
            outs = [sim._simulate(Patch(), kind, TimingProtocol(target=0.03, min_rounds=5, max_rounds=60), s,
                                  race=race) for s in range(trials)]
            cells.append(f"{np.mean([sim._covered(o, 'model', sim.TRUE_RATIO) for o in outs]):.3f}")
        cells.append(f"{np.median([o.rounds for o in outs]):.0f}")
        print(f"| {kind} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
