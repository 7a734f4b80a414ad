"""The fast lane's guard (the repository's conftest.py): a long fast-lane test fails, with the fix."""

from __future__ import annotations

import pytest

from conftest import over_the_limit


def report(when: str, duration: float, outcome: str = "passed") -> pytest.TestReport:
    return pytest.TestReport("tests/test_x.py::test_y", ("tests/test_x.py", 1, "test_y"), {}, outcome, None, when,
                             duration=duration)


def test_a_long_setup_or_body_fails_with_the_way_out() -> None:
    for when in ("setup", "call"):
        message = over_the_limit(report(when, 7.5), slow=False, limit_s=6)
        assert message and f"{when} took 7.5 s, over the fast lane's 6 s" in message
        assert "SMALL_WIDTHS" in message and "@pytest.mark.slow" in message


def test_slow_tests_quick_tests_failures_and_teardown_pass_through() -> None:
    assert over_the_limit(report("call", 60), slow=True, limit_s=6) is None
    assert over_the_limit(report("call", 5.9), slow=False, limit_s=6) is None
    assert over_the_limit(report("call", 60, "failed"), slow=False, limit_s=6) is None  # its own failure shows
    assert over_the_limit(report("teardown", 60), slow=False, limit_s=6) is None
