"""Operations: the nightly schedule (cron, timezone, yesterday, catch-up after a downtime, run keys) and
the run-failure alert (pure wording, then the sensor on a real failing run, alert in the outbox)."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._utils.schedules import cron_string_iterator

from alumni_orchestration.defs.jobs import MAIN_SELECTION, alumni_main
from alumni_orchestration.defs.operations.schedules import NIGHTLY_SCHEDULE, alumni_nightly
from alumni_orchestration.defs.scoring.assets import HISTORY
from alumni_orchestration.operations.alerts import FailedStep, failure_alert, scrub
from alumni_orchestration.operations.nightly import MAX_CATCH_UP_DAYS, NightlySkip, plan_nightly

PARIS = ZoneInfo("Europe/Paris")
START = "dagster/asset_partition_range_start"
END = "dagster/asset_partition_range_end"


def _paris(year: int, month: int, day: int, hour: int = 2, fold: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=PARIS, fold=fold)


# Materialisations recorded here carry the wall clock's time, and a day counts as done only when its
# partition was materialised after the day ended: the instance-based tests therefore work on days relative
# to today (T), with the tick at 02:00 this morning (its yesterday is T-1) or tomorrow morning.
T = dt.datetime.now(PARIS).date()


@pytest.fixture(autouse=True)
def _today_as_the_test_starts() -> None:
    """T is today when each test starts, not when the module was imported: a suite that runs past midnight in
    Paris (CI at 23:00 UTC) recorded its materialisations after midnight against yesterday's T, so a day
    'materialised while in progress' looked done."""
    global T
    T = dt.datetime.now(PARIS).date()


def _day(offset: int) -> str:
    return (T + dt.timedelta(days=offset)).isoformat()


def _night(offset: int = 0) -> dt.datetime:
    day = T + dt.timedelta(days=offset)
    return dt.datetime(day.year, day.month, day.day, 2, tzinfo=PARIS)


def _completed(instance: dg.DagsterInstance, first: str, last: str) -> None:
    """What a successful alumni_main run leaves behind: the score history's partitions of its days."""
    day = dt.date.fromisoformat(first)
    while day <= dt.date.fromisoformat(last):
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=HISTORY, partition=day.isoformat()))
        day += dt.timedelta(days=1)


def _tick(instance: dg.DagsterInstance, when: dt.datetime):
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as context:
        return alumni_nightly(context)


def _range(request) -> tuple[str, str]:
    assert isinstance(request, dg.RunRequest), request
    return request.tags[START], request.tags[END]


# --- the schedule --------------------------------------------------------------------------------------------


def test_nightly_schedule_is_registered_at_2am_paris_for_the_main_job() -> None:
    from alumni_orchestration.definitions import defs

    definitions = defs()
    schedule = next(s for s in definitions.schedules if s.name == NIGHTLY_SCHEDULE)
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Europe/Paris"
    assert schedule.job_name == "alumni_main"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = definitions.resolve_job_def("alumni_main")
    assert job.partitions_def == alumni_main.partitions_def
    graph = definitions.resolve_asset_graph()
    selected = MAIN_SELECTION.resolve(graph)
    groups = {graph.get(k).group_name for k in selected}
    assert {"sources", "staging", "intermediate", "marts", "scoring"} <= groups and HISTORY in selected
    # One partitioning per job: the daily one (or none); the campaign waves are outside.
    assert {graph.get(k).partitions_def for k in selected} <= {None, job.partitions_def}


def test_ticks_fall_at_2am_paris_summer_and_winter() -> None:
    start = dt.datetime(2026, 3, 27, tzinfo=dt.UTC).timestamp()
    ticks = [t for _, t in zip(range(4), cron_string_iterator(start, "0 2 * * *", "Europe/Paris"), strict=False)]
    utc_hours = [t.astimezone(dt.UTC).hour for t in ticks]
    paris = [t.astimezone(PARIS) for t in ticks]
    # 27 and 28 March in winter time (UTC+1), 30 March in summer time (UTC+2); 29 March has no 02:00 in Paris.
    assert [p.date().isoformat() for p in paris][:2] == ["2026-03-27", "2026-03-28"]
    assert utc_hours[0] == 1 and utc_hours[-1] == 0
    assert all(p.hour in (2, 3) for p in paris) and paris[-1].hour == 2


def test_daylight_saving_nights_take_the_paris_yesterday() -> None:
    start = dt.date(2026, 1, 1)
    spring = plan_nightly(_paris(2026, 3, 29, hour=3), dt.date(2026, 3, 27), start)  # no 02:00 that night
    assert (spring.first_day, spring.last_day) == (dt.date(2026, 3, 28), dt.date(2026, 3, 28))
    autumn = plan_nightly(_paris(2026, 10, 25, fold=1), dt.date(2026, 10, 23), start)  # 02:00 happens twice
    assert (autumn.first_day, autumn.last_day) == (dt.date(2026, 10, 24), dt.date(2026, 10, 24))
    # The same instant in UTC: 01:00 UTC is 02:00 in Paris in winter, and the Paris date is what counts.
    utc = plan_nightly(dt.datetime(2026, 11, 22, 1, tzinfo=dt.UTC), dt.date(2026, 11, 20), start)
    assert (utc.first_day, utc.last_day) == (dt.date(2026, 11, 21), dt.date(2026, 11, 21))
    assert isinstance(plan_nightly(_paris(2026, 1, 1), None, start), NightlySkip)  # before the partitions


def test_a_normal_night_covers_yesterday_in_one_run() -> None:
    with dg.instance_for_test() as instance:
        _completed(instance, _day(-20), _day(-2))
        request = _tick(instance, _night())
        assert _range(request) == (_day(-1), _day(-1))
        assert request.run_key == f"alumni_main:{_day(-1)}..{_day(-1)}"
        assert request.tags["alumni/nightly"] == "yesterday"
        assert _tick(instance, _night().astimezone(dt.UTC)).run_key == request.run_key
        _completed(instance, _day(-1), _day(-1))
        skipped = _tick(instance, _night())
        assert isinstance(skipped, dg.SkipReason) and "Already covered" in skipped.skip_message


def test_a_day_materialised_while_in_progress_is_not_done() -> None:
    with dg.instance_for_test() as instance:
        _completed(instance, _day(-20), _day(-1))
        _completed(instance, _day(0), _day(0))  # a run during today: today's partition, half a day of data
        assert _range(_tick(instance, _night(1))) == (_day(0), _day(0))


def test_after_a_downtime_one_run_covers_every_missed_day_once() -> None:
    with dg.instance_for_test() as instance:
        _completed(instance, _day(-20), _day(-8))  # the daemon was down for a week
        request = _tick(instance, _night())
        assert _range(request) == (_day(-7), _day(-1))
        assert request.tags["alumni/nightly"] == "catch-up"
        assert request.run_key == f"alumni_main:{_day(-7)}..{_day(-1)}"
        # Re-evaluating the tick (daemon restart, retry) asks for the same run: Dagster launches a run_key once.
        assert _tick(instance, _night()).run_key == request.run_key
        # The catch-up run succeeded: the next night is back to one day.
        _completed(instance, _day(-7), _day(-1))
        following = _tick(instance, _night(1))
        assert _range(following) == (_day(0), _day(0)) and following.run_key != request.run_key


def test_a_failed_night_is_taken_again_the_next_night() -> None:
    with dg.instance_for_test() as instance:
        _completed(instance, _day(-20), _day(-2))
        first = _tick(instance, _night())
        # That run failed before the score history: nothing recorded for T-1.
        second = _tick(instance, _night(1))
        assert _range(second) == (_day(-1), _day(0)) and second.run_key != first.run_key


def test_a_long_downtime_is_left_to_a_backfill_and_says_so() -> None:
    with dg.instance_for_test() as instance:
        _completed(instance, _day(-60), _day(-31))
        skipped = _tick(instance, _night())
        assert isinstance(skipped, dg.SkipReason)
        assert "30 days" in skipped.skip_message and f"{_day(-30)} .. {_day(-1)}" in skipped.skip_message
        assert "backfill" in skipped.skip_message
        # Exactly the bound is still caught up by itself.
        _completed(instance, _day(-30), _day(-MAX_CATCH_UP_DAYS - 1))
        assert _range(_tick(instance, _night())) == (_day(-MAX_CATCH_UP_DAYS), _day(-1))


def test_a_fresh_instance_starts_with_yesterday() -> None:
    with dg.instance_for_test() as instance:
        assert _range(_tick(instance, _night())) == (_day(-1), _day(-1))


def test_no_second_nightly_run_while_one_is_in_progress() -> None:
    with dg.instance_for_test() as instance:
        _completed(instance, _day(-20), _day(-2))
        running = dg.DagsterRun(job_name="alumni_main", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED,
                                tags={"dagster/schedule_name": NIGHTLY_SCHEDULE})
        instance.add_run(running)
        skipped = _tick(instance, _night())
        assert isinstance(skipped, dg.SkipReason) and running.run_id in skipped.skip_message
        instance.report_run_failed(running)
        assert isinstance(_tick(instance, _night()), dg.RunRequest)


# --- the failure alert, pure ---------------------------------------------------------------------------------


def test_failure_alert_has_the_run_link_and_steps_and_no_personal_data() -> None:
    subject, text = failure_alert(
        "abc-123", "alumni_main",
        [FailedStep("raw__sendgrid_events", "ValueError",
                    "bad row for jean.dupont@example.org: {'first_name': 'Jean', 'last_name': 'Dupont'}\nTraceback ..."),
         FailedStep("scoring__member_scores", "ConnectionError",
                    "postgresql://admin:s3cret@db.internal:5432/members unreachable; key SG.abcdefgh.ijklmnop")],
        "https://dagster.example.org/", partition_range=("2026-11-21", "2026-11-21"))
    assert "https://dagster.example.org/runs/abc-123" in text
    assert "raw__sendgrid_events" in text and "scoring__member_scores" in text and "ValueError" in text
    assert "alumni_main" in subject and "raw__sendgrid_events" in subject
    for secret in ("jean.dupont", "@example.org", "Jean", "Dupont", "s3cret", "admin", "SG.abcdefgh", "Traceback"):
        assert secret not in subject + text, secret
    assert "2026-11-21" in text


def test_scrub_keeps_a_useful_error_line() -> None:
    assert scrub('Catalog Error: Table with name "member_scores" does not exist!') == \
        'Catalog Error: Table with name "member_scores" does not exist!'
    assert scrub("x" * 1000).endswith("…") and len(scrub("x" * 1000)) <= 240
    assert scrub("Could not convert string 'Marie Curie' to INT32") == "Could not convert string '…' to INT32"


def test_run_level_failure_without_steps_still_alerts() -> None:
    _, text = failure_alert("r1", "alumni_main", [], "http://127.0.0.1:3000",
                            run_error="Run worker crashed for member marie@example.org")
    assert "http://127.0.0.1:3000/runs/r1" in text and "[email]" in text and "marie@" not in text


@pytest.mark.parametrize("bad", ["alice@example.com", "a.b+c@sub.example.co.uk"])
def test_scrub_masks_emails(bad: str) -> None:
    assert bad not in scrub(f"failed for {bad} today") and "[email]" in scrub(f"failed for {bad} today")


# --- the failure alert, end to end: a failing run, the sensor, the outbox -------------------------------------

PII_EMAIL = "jean.dupont@example.org"


@dg.asset(pool="duckdb_warehouse")
def broken_member_load() -> None:
    raise ValueError(f"could not load member {PII_EMAIL} {{'first_name': 'Jean', 'last_name': 'Dupont'}}")


@dg.asset
def fine_upstream() -> int:
    return 1


def test_run_failure_sensor_puts_an_alert_without_personal_data_in_the_outbox(tmp_path, monkeypatch) -> None:
    import duckdb

    from alumni_orchestration.defs.campaigns.resources import EmailSenderResource
    from alumni_orchestration.defs.operations.sensors import alumni_run_failure_alert
    from alumni_orchestration.defs.warehouse.resources import WarehouseResource

    warehouse = tmp_path / "warehouse.duckdb"
    sender = EmailSenderResource(mode="outbox", warehouse=WarehouseResource(path=str(warehouse)),
                                 alert_recipient="lead@association.test", webserver_url="http://dagster.test:3000")
    job = dg.define_asset_job("nightly_like", selection=[broken_member_load, fine_upstream])
    definitions = dg.Definitions(assets=[broken_member_load, fine_upstream], jobs=[job],
                                 sensors=[alumni_run_failure_alert], resources={"email_sender": sender})

    def tick(instance, cursor):
        with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=definitions,
                                     resources={"email_sender": sender}) as context:
            return alumni_run_failure_alert.evaluate_tick(context), context.cursor

    with dg.instance_for_test() as instance:
        _, cursor = tick(instance, None)
        ok = definitions.resolve_job_def("nightly_like").execute_in_process(
            instance=instance, asset_selection=[fine_upstream.key])
        assert ok.success
        _, cursor = tick(instance, cursor)
        assert not warehouse.exists()  # a successful run sends nothing
        failed = definitions.resolve_job_def("nightly_like").execute_in_process(
            instance=instance, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": "2026-11-21", "dagster/asset_partition_range_end": "2026-11-21"})
        assert not failed.success
        _, cursor = tick(instance, cursor)
        _, cursor = tick(instance, cursor)  # the next tick does not alert the same failure again

    with duckdb.connect(str(warehouse), read_only=True) as conn:
        rows = conn.execute("select kind, to_email, subject, text from campaigns.outbox").fetchall()
    assert len(rows) == 1
    kind, to_email, subject, text = rows[0]
    assert kind == "alert" and to_email == "lead@association.test"
    assert f"http://dagster.test:3000/runs/{failed.run_id}" in text
    assert "broken_member_load" in subject and "broken_member_load" in text and "ValueError" in text
    assert "2026-11-21" in text
    for pii in (PII_EMAIL, "jean.dupont", "example.org", "Jean", "Dupont"):
        assert pii not in subject + text, pii


def test_the_alert_says_when_dagster_retries_the_run_itself() -> None:
    _, retried = failure_alert("r", "campaign_job", [], "http://x", will_retry=True)
    _, final = failure_alert("r", "campaign_job", [], "http://x")
    assert "re-executes it automatically" in retried and "re-executes" not in final


def test_error_class_is_not_repeated() -> None:
    _, text = failure_alert("r", "j", [FailedStep("s", "ValueError", "ValueError: boom")], "http://x")
    assert "- s — ValueError: boom" in text


def test_the_tick_resolves_as_the_daemon_evaluates_it() -> None:
    from alumni_orchestration.definitions import defs

    definitions = defs()
    with dg.instance_for_test() as instance:
        _completed(instance, _day(-20), _day(-4))
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=_night(),
                                       repository_def=definitions.get_repository_def()) as context:
            data = alumni_nightly.evaluate_tick(context)
    assert data.skip_message is None and len(data.run_requests) == 1
    request = data.run_requests[0]
    assert _range(request) == (_day(-3), _day(-1))
    assert request.partition_key is None and request.job_name in (None, "alumni_main")
    assert request.tags["dagster/max_runtime"] == str(4 * 3600)
