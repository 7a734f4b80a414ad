"""The frontier targets: how close to dense a compressed model stays at a fraction of its latency.

    A  at most 0.5 pp below dense at no more than 0.20x dense latency (batch 10,000)
    B  at most 1.0 pp below dense at no more than 0.125x (batch 10,000)
    C  at most 1.0 pp below dense at no more than 0.10x dense batch-1 latency
    D  no detectable difference below dense (McNemar p > 0.05 and the paired interval contains
       0; or above dense) at no more than 0.33x

Each is chosen on validation and judged on test by ``measure.targets.judge``, the rule the
deployment frontier (``deploy/frontier.py``) uses for its own targets.
"""

from __future__ import annotations

from typing import Any

from torch_impl.measure.results import Result
from torch_impl.measure.targets import Target, judge

# The recipe families added to push the front (recipes.py); the plot draws the front without them too.
FRONTIER_FAMILIES = ("longer recovery", "nested ranks", "trunk compressed", "low-rank from the start")


TARGETS = (Target("A", 0.20, 0.5), Target("B", 0.125, 1.0), Target("C", 0.10, 1.0, batch="small"),
           Target("D", 0.33, None))


def frontier(results: list[Result]) -> dict[str, Any]:
    """Each target met or missed, the row chosen on validation, and the closest row when missed."""
    return judge(results, TARGETS)
