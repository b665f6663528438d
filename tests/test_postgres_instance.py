"""The production instance (alumni_orchestration/deploy/dagster.yaml) on the real PostgreSQL: a real
materialisation and a sensor tick, stored in PostgreSQL and read back through a new instance object."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.scheduler.instigation import InstigatorType, TickData, TickStatus
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from alumni_orchestration.defs.membership.assets import membership_snapshot
from alumni_orchestration.defs.membership.resources import MembershipDatabaseResource
from alumni_orchestration.defs.operations.sensors import alumni_run_failure_alert
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.warehouse import WAREHOUSE_POOL

pytestmark = pytest.mark.slow  # a generated association, dbt or a Dagster subprocess

DEPLOY_YAML = Path(__file__).resolve().parents[1] / "alumni_orchestration" / "deploy" / "dagster.yaml"
MEMBERS = dg.AssetKey(["raw", "members"])


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send_alert(self, subject: str, text: str) -> None:
        self.sent.append((subject, text))


@dg.asset(pool=WAREHOUSE_POOL)
def deliberately_broken() -> None:
    raise RuntimeError("the warehouse answered nonsense")


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


def _tick(instance: dg.DagsterInstance, sender: RecordingSender, cursor: str | None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"email_sender": sender}) as context:
        return alumni_run_failure_alert.evaluate_tick(context), context.cursor


@pytest.mark.postgres
def test_production_instance_stores_runs_materialisations_and_sensor_ticks_in_postgres(
        postgres_database: str, small_association: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    database = postgres_database.rsplit("/", 1)[1]
    monkeypatch.setenv("DAGSTER_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_USER", "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")
    monkeypatch.setenv("DAGSTER_PG_DB", database)

    with _instance(home) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

        result = dg.materialize(
            [membership_snapshot], instance=instance,
            resources={"membership_db": MembershipDatabaseResource(url=f"sqlite:///{small_association / 'membership.sqlite'}"),
                       "warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))})
        assert result.success
        # The warehouse writers' pool exists in the instance database with its limit of 1.
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 1

        sender = RecordingSender()
        first, cursor = _tick(instance, sender, None)  # the first tick only sets the cursor
        assert not sender.sent and first.skip_message
        failed = dg.materialize([deliberately_broken], instance=instance, raise_on_error=False)
        assert not failed.success
        _, cursor = _tick(instance, sender, cursor)
        assert len(sender.sent) == 1
        subject, text = sender.sent[0]
        assert f"/runs/{failed.run_id}" in text and "deliberately_broken" in text and "RuntimeError" in text
        # Record the tick as the daemon does (schedule storage), with its cursor.
        instance.create_tick(TickData(
            instigator_origin_id="alumni_run_failure_alert-origin", instigator_name=alumni_run_failure_alert.name,
            instigator_type=InstigatorType.SENSOR, status=TickStatus.SUCCESS, timestamp=time.time(),
            selector_id="alumni_run_failure_alert-selector", cursor=cursor, run_ids=[]))

    # A new instance object (a restarted webserver or daemon) reads everything back from PostgreSQL.
    with _instance(home) as reopened:
        runs = {run.run_id: run for run in reopened.get_runs()}
        assert runs[result.run_id].status == dg.DagsterRunStatus.SUCCESS
        assert runs[failed.run_id].status == dg.DagsterRunStatus.FAILURE
        latest = reopened.get_latest_materialization_event(MEMBERS)
        assert latest is not None and latest.run_id == result.run_id
        ticks = reopened.get_ticks("alumni_run_failure_alert-origin", "alumni_run_failure_alert-selector")
        assert len(ticks) == 1 and ticks[0].cursor == cursor
        # Resuming from the stored cursor, the failure is not alerted twice.
        again = RecordingSender()
        _tick(reopened, again, ticks[0].cursor)
        assert again.sent == []

    engine = sa.create_engine(postgres_database)
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("select run_id, status from runs")).fetchall())
        materialised = conn.execute(sa.text(
            "select count(*) from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION' and run_id = :r"),
            {"r": result.run_id}).scalar_one()
    engine.dispose()
    assert stored[result.run_id] == "SUCCESS" and stored[failed.run_id] == "FAILURE"
    assert materialised == len(membership_snapshot.keys)  # one per membership table
