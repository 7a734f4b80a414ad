"""The fast lane stays fast: a test not marked slow fails when its setup or its body runs long.

``make test-fast`` (every test not marked ``slow``) is the loop a change is developed in, and it
must stay under 90 s on a 2-core machine; one slow test in it costs every run. Such a test gets
faster (the small network, ``torch_impl.model.SMALL_WIDTHS``) or is marked ``@pytest.mark.slow``
(``make test`` still runs it). The guard acts when slow tests are deselected (``-m "not slow"``,
as ``make test-fast`` runs), never in the full suite. ``FAST_LANE_LIMIT_S`` may be raised on a
slower machine.

JAX compiles each eager operation at its first use in a process (5 s for Haiku's first init
here), a cost of the process rather than of whichever test comes first: when the collected
tests use JAX, one small init runs after collection, outside every test's time.
"""

from __future__ import annotations

import copy
import os
import sys

import pytest

FAST_LANE_LIMIT_S = float(os.environ.get("FAST_LANE_LIMIT_S", "6"))


def over_the_limit(report: pytest.TestReport, slow: bool, limit_s: float = FAST_LANE_LIMIT_S) -> str | None:
    """The failure message for a passed phase of a fast-lane test that took longer than ``limit_s``."""
    if slow or not report.passed or report.when not in ("setup", "call") or report.duration <= limit_s:
        return None
    return (f"{report.nodeid}: {report.when} took {report.duration:.1f} s, over the fast lane's {limit_s:g} s "
            "(FAST_LANE_LIMIT_S); make it faster (the small network, torch_impl.model.SMALL_WIDTHS) or mark it "
            "@pytest.mark.slow")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    # Only in the fast lane itself (-m "not slow"): there a long test costs every run; in the full
    # suite (CI) a noisy machine must not turn a passing test into a failure.
    fast_lane = "not slow" in (item.config.getoption("markexpr") or "")
    if fast_lane and (message := over_the_limit(report, "slow" in item.keywords)):
        report.outcome = "failed"
        report.longrepr = message


def pytest_collection_finish(session: pytest.Session) -> None:
    if "jax_ref" in sys.modules and session.items:
        from jax_ref.model import init_params
        from torch_impl.model import SMALL_WIDTHS

        init_params(0, "spatial", SMALL_WIDTHS)


@pytest.fixture(scope="session")
def full_size_nets() -> dict:
    """Each full-size network (seed 0), built once per run: Haiku's init of 21-30 M weights
    takes seconds. Shared: a test that changes one takes ``copy.deepcopy`` of it first."""
    from torch_impl.model import POOLINGS, build_model

    return {pooling: build_model(0, pooling).eval() for pooling in POOLINGS}


@pytest.fixture
def full_size_net(full_size_nets):
    """A private copy of a full-size network: ``full_size_net("haiku")``."""
    return lambda pooling="spatial": copy.deepcopy(full_size_nets[pooling])
