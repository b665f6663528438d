"""The two test tiers: `make test-fast` runs `pytest -m "not slow"`, `make test` runs everything.

A test is `slow` when it needs a generated association, dbt, a Dagster or server subprocess, or
otherwise takes more than about two seconds. The guard below is by what a test uses, not by timing:
speed targets belong to the benchmark harness, never to timed unit tests.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

# Session fixtures (tests/conftest.py) that generate an association or run dbt. A test that requests one,
# directly or through another fixture, is slow.
SLOW_FIXTURES = frozenset({
    "small_association",   # generates a 600-member, 2-year association
    "scored_association",  # generates an association, loads it, runs `dbt build`, trains and scores
})


def fast_tier_violation(fixture_names: Iterable[str], marked_slow: bool) -> str | None:
    """Why a test cannot stay in the fast tier, or None."""
    if marked_slow:
        return None
    used = sorted(SLOW_FIXTURES.intersection(fixture_names))
    if not used:
        return None
    return (f"uses {', '.join(used)} (a generated association or dbt) but is not marked slow: "
            "add `pytestmark = pytest.mark.slow` to its module or `@pytest.mark.slow` to the test")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fails the test before its fixtures run, so a slow test cannot silently enter the fast tier
    (item.fixturenames holds every fixture the test uses, directly or through another fixture)."""
    problem = fast_tier_violation(item.fixturenames, item.get_closest_marker("slow") is not None)
    if problem:
        pytest.fail(f"{item.nodeid} {problem}", pytrace=False)
