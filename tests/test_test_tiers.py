"""The fast tier's guard: a test that uses a generated association or dbt without the `slow` mark fails
before the fixture runs, whether it asks for the fixture directly or through another fixture."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from tests.tiers import SLOW_CALLS, SLOW_FIXTURES

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = '''
import os
from pathlib import Path

import pytest

from tests.tiers import pytest_runtest_setup  # noqa: F401


@pytest.fixture(scope="session")
def small_association():
    Path(os.environ["GENERATED_MARKER"]).write_text("yes")  # tells the outer test the fixture ran
    return "association"


@pytest.fixture
def world(scored_association):
    return scored_association


@pytest.fixture(scope="session")
def scored_association():
    return "scored"
'''

TESTS = '''
import pytest


def generate_association(out):  # stands for the generator: the guard reads what a fixture or a test calls
    return out


@pytest.fixture(scope="module")
def local_association(tmp_path_factory):
    return generate_association(tmp_path_factory.mktemp("a"))


def test_unmarked_builds_one_in_a_module_fixture(local_association):
    pass


def test_unmarked_builds_one_itself(tmp_path):
    generate_association(tmp_path)


def test_unmarked_asks_for_the_association(small_association):
    pass


def test_unmarked_gets_it_through_another_fixture(world):
    pass


@pytest.mark.slow
def test_marked_may_use_it(small_association):
    pass


def test_plain(tmp_path):
    pass
'''


def _pytest(where: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GENERATED_MARKER": str(where.parent / "generated")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(where),
                           "--basetemp", str(where / "tmp"), *args, str(where)],
                          cwd=where, env=env, capture_output=True, text=True, timeout=120)


def _suite(tmp_path: Path) -> Path:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_tiers_example.py").write_text(TESTS)
    (suite / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: slow\n")
    return suite


def test_an_unmarked_test_using_a_slow_fixture_fails_before_the_fixture_runs(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    run = _pytest(suite, "-m", "not slow")
    assert "1 passed, 1 deselected, 4 errors" in run.stdout, run.stdout  # errors at setup, before the fixture
    assert "test_unmarked_asks_for_the_association uses small_association" in run.stdout
    assert "test_unmarked_gets_it_through_another_fixture uses scored_association" in run.stdout
    assert "test_unmarked_builds_one_in_a_module_fixture uses local_association" in run.stdout
    assert "test_unmarked_builds_one_itself uses a generator call in its body" in run.stdout
    assert not (tmp_path / "generated").exists()  # the association was never built for the fast tier


def test_a_marked_test_runs_its_slow_fixture_in_the_full_suite(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    run = _pytest(suite, "-k", "test_marked_may_use_it or test_plain")
    assert "2 passed, 4 deselected in" in run.stdout, run.stdout
    assert (tmp_path / "generated").read_text() == "yes"


def _conftest_fixtures() -> dict[str, str]:
    tree = ast.parse((ROOT / "tests/conftest.py").read_text())
    return {node.name: ast.unparse(node) for node in tree.body if isinstance(node, ast.FunctionDef)
            and any("fixture" in ast.unparse(d) for d in node.decorator_list)}


def test_every_conftest_fixture_that_generates_or_builds_is_a_slow_fixture() -> None:
    fixtures = _conftest_fixtures()
    assert SLOW_FIXTURES <= fixtures.keys()  # a renamed fixture would silently disable the guard
    building = {name for name, source in fixtures.items() if any(call in source for call in SLOW_CALLS)}
    assert building == SLOW_FIXTURES
