"""Shared fixtures: generated associations, the real PostgreSQL, an isolated ALUMNI_HOME; the test tiers' guard."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

from alumni_orchestration.synthetic.generator import GeneratorConfig, generate_association
from tests.tiers import pytest_runtest_setup  # noqa: F401 - the fast tier's guard (tests/tiers.py), a hook here

POSTGRES_ADMIN_URL = os.environ.get("ALUMNI_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
TEST_END_DATE = "2026-11-21"

# Property tests: derandomised (the same examples every run) and bounded in CI; `HYPOTHESIS_PROFILE=dev`
# explores new examples on a developer's machine.
settings.register_profile("ci", derandomize=True, max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    """A test run started in the background (`cmd &`, as CI runners may) inherits SIGINT ignored. Dagster's
    in-process runs map SIGTERM to SIGINT's handler when they end, so SIGTERM became ignored too, and every
    child a later test started inherited that: its terminate() no longer stopped the service (seen in a
    clean-clone run). With Python's own SIGINT handler, which does not survive exec, children stop on SIGTERM."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _postgres_reachable() -> str | None:
    try:
        engine = sa.create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    problem = _postgres_reachable()
    if problem:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1 but PostgreSQL at 127.0.0.1:5432 is not reachable ({problem})")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 not reachable ({problem}); set REQUIRE_POSTGRES=1 to make this an error")
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_database(postgres_admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards; yields its SQLAlchemy URL."""
    name = f"alumni_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_wide_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this test run that every pytest-xdist worker sees (each worker has its own basetemp
    inside the run's); the run's basetemp itself without xdist."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def run_wide_lock(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[None]:
    """Held by one process of the test run at a time (xdist workers included)."""
    with open(run_wide_dir(tmp_path_factory) / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """`build(folder)` once per test run, whichever worker asks first; the others wait for it and share it
    read-only. A build that failed is left unfinished, so the next one to ask builds again."""
    folder, done = run_wide_dir(tmp_path_factory) / name, run_wide_dir(tmp_path_factory) / f"{name}.built"
    with run_wide_lock(tmp_path_factory, name):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def small_association(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 600-member, 2-year association shared (read-only) by the tests of a run."""
    return built_once(tmp_path_factory, "association", lambda out: generate_association(
        out, GeneratorConfig(members=600, years=2, seed=11, end_date=TEST_END_DATE)))


@pytest.fixture(scope="session")
def built_association(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The one dbt-built warehouse of a test run: a 1,500-member, 4-year association -> raw layer (the
    sources' loaders) -> `dbt build` as of 2026-11-22. Shared read-only: (association dir, warehouse file, dbt
    target dir); tests copy the warehouse before writing. `scored_association` is built on a copy of it."""
    from tests.campaign_fixture import build_dbt_association

    root = built_once(tmp_path_factory, "built", lambda out: build_dbt_association(out))
    return root / "association", root / "warehouse.duckdb", root / "target"


@pytest.fixture(scope="session")
def scored_association(built_association: tuple[Path, Path, Path],
                       tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The campaign tests' scored association (the built warehouse, then model -> score history), built once
    per run and shared read-only: (association dir, warehouse file). Tests copy both before writing."""
    from tests.campaign_fixture import score_warehouse

    association, warehouse, _ = built_association
    root = built_once(tmp_path_factory, "scored", lambda out: score_warehouse(warehouse, out))
    return association, root / "warehouse.duckdb"


# Under pytest-xdist (`make test` and `make test-fast` run `-n 2 --dist loadfile`), each module's tests stay
# on one worker, so that its module fixtures are built once. The longest modules start first; those that
# read the run's shared warehouse come last, when the first module that needed it (the recovery daemon
# test) has built it, so that no worker waits for it.
LONGEST_FIRST = ("test_recovery_daemon", "test_bench", "test_scoring", "test_mapping_marts", "test_sources_end_to_end",
                 "test_mapping_equivalence", "test_check", "test_generator")
SHARED_WAREHOUSE_LAST = ("test_campaigns", "test_send_mode", "test_recovery_unknown", "test_dbt_project")


def module_rank(item: pytest.Item) -> tuple[int, int]:
    name = item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
    if name in LONGEST_FIRST:
        return 0, LONGEST_FIRST.index(name)
    if name in SHARED_WAREHOUSE_LAST:
        return 2, SHARED_WAREHOUSE_LAST.index(name)
    return 1, 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=module_rank)  # stable: a module's tests keep their order


@pytest.fixture
def alumni_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "alumni_home"
    home.mkdir()
    monkeypatch.setenv("ALUMNI_HOME", str(home))
    return home


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dbt parse once per session, so the Dagster definitions can load the manifest (one worker at a time:
    the manifest is the project's own file)."""
    from alumni_orchestration.defs.dbt.assets import ensure_manifest

    with run_wide_lock(tmp_path_factory, "dbt-manifest"):
        return ensure_manifest()
