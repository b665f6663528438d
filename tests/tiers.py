"""The two test tiers: `make test-fast` runs `pytest -m "not slow"`, `make test` runs everything.

A test is `slow` when it needs a generated association, dbt, a Dagster or server subprocess, or
otherwise takes more than about two seconds. The guard below is by what a test uses, not by timing:
speed targets belong to the benchmark harness, never to timed unit tests.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import pytest

# Session fixtures (tests/conftest.py) that generate an association or run dbt. A test that requests one,
# directly or through another fixture, is slow.
SLOW_FIXTURES = frozenset({
    "small_association",   # generates a 600-member, 2-year association
    "built_association",   # generates an association, loads it and runs `dbt build`
    "scored_association",  # generates an association, loads it, runs `dbt build`, trains and scores
})
# A fixture (of any module) or a test whose own source calls one of these builds an association: slow.
SLOW_CALLS = ("generate_association(", "build_scored_association(", "build_dbt_association(", "score_warehouse(",
              "dbt_build(")


@functools.cache
def calls_a_slow_builder(func: Callable) -> bool:
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        return False
    return any(call in source for call in SLOW_CALLS)


def slow_uses(item: pytest.Item) -> list[str]:
    """What makes this test slow: the slow fixtures it uses (directly or through another fixture)
    and the builders its own body calls."""
    used = set(SLOW_FIXTURES.intersection(item.fixturenames))
    fixture_defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    used.update(name for name, defs in fixture_defs.items()
                if any(calls_a_slow_builder(getattr(d, "func", None)) for d in defs))
    function = getattr(item, "function", None)
    if function is not None and calls_a_slow_builder(function):
        used.add("a generator call in its body")
    return sorted(used)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fails the test before its fixtures run, so a slow test cannot silently enter the fast tier."""
    if item.get_closest_marker("slow") is not None:
        return
    used = slow_uses(item)
    if used:
        pytest.fail(f"{item.nodeid} uses {', '.join(used)} (a generated association or dbt) but is not marked "
                    "slow: add `pytestmark = pytest.mark.slow` to its module or `@pytest.mark.slow` to the test",
                    pytrace=False)
