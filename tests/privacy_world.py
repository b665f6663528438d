"""A deployment's home holding one member's data in every store, for the privacy tests.

From the session's scored association: the warehouse, a dues-reminder wave in outbox mode (ledger,
outbox, audience), the member's webhook events in the landing folder (with a delivered and a click of
their campaign message, also in raw.sendgrid_events), exports, a log, the saved model, and the Dagster
instance of those runs, all under one $ALUMNI_HOME.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import orjson

from alumni_orchestration.campaigns.definitions import campaigns
from alumni_orchestration.defs.campaigns.assets import campaign_audience, campaign_sends
from alumni_orchestration.defs.campaigns.resources import EmailSenderResource
from alumni_orchestration.defs.campaigns.sensors import build_campaign_sensor
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.privacy.scan import scan_files, scan_models, scan_warehouse
from alumni_orchestration.privacy.subject import Subject, find_subject
from alumni_orchestration.webhook.landing import Landing

LANDING_DAYS = 6


@dataclass(frozen=True)
class World:
    home: Path
    association: Path
    member_id: int
    subject: Subject  # read before any erasure: the plain emails and name to look for

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def landing(self) -> Path:
        return self.home / "landing" / "sendgrid"

    def resource(self) -> WarehouseResource:
        return WarehouseResource(path=str(self.warehouse))

    def instance(self) -> dg.DagsterInstance:
        return _instance(self.home)

    def copy_to(self, root: Path) -> World:
        shutil.copytree(self.home, root / "home")
        return World(root / "home", self.association, self.member_id, self.subject)


def _instance(home: Path) -> dg.DagsterInstance:
    """The deployment's Dagster instance, under $ALUMNI_HOME/dagster as in the demo."""
    (home / "dagster").mkdir(exist_ok=True)
    return dg.DagsterInstance.local_temp(tempdir=str(home / "dagster"))


def _run_outbox_wave(home: Path, warehouse: WarehouseResource) -> None:
    sensor = build_campaign_sensor(campaigns()["dues_reminder"])
    instance = _instance(home)
    with dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse}) as context:
        [request] = sensor(context)
    result = dg.materialize([campaign_audience, campaign_sends], partition_key=request.partition_key,
                            instance=instance, tags=request.tags, resources={
                                "warehouse": warehouse,
                                "email_sender": EmailSenderResource(mode="outbox", warehouse=warehouse)})
    assert result.success


def _choose_member(conn: duckdb.DuckDBPyConnection, model_members: set[int]) -> int:
    """A treated member with a unique name, provider activity and rows in the saved model."""
    rows = conn.execute("""
        select s.member_id from campaigns.campaign_sends s join raw.members m using (member_id)
        where s.arm = 'treatment'
          and (m.first_name, m.last_name) in (select first_name, last_name from raw.members group by all
                                              having count(*) = 1)
          and m.email in (select email from raw.eventbrite_attendees)
          and m.email in (select email from raw.sendgrid_events)
        order by s.member_id""").fetchall()
    return next(r[0] for r in rows if r[0] in model_members)


def _land_member_days(association: Path, landing: Path, subject: Subject, campaign: tuple) -> list[dict]:
    """The days of the provider's webhook history where the member appears, each landed as one batch, and
    a delivered and a click of their campaign message."""
    landed = Landing(landing)
    days = sorted((association / "providers" / "sendgrid" / "events").glob("*.jsonl"))
    chosen = 0
    for day_file in days:
        text = day_file.read_text()
        if not subject.mentioned_in(text):
            continue
        events = [json.loads(line) for line in text.splitlines() if line.strip()]
        landed.write_batch(day_file.stem, f"1700000000000000000-{day_file.stem}.json", orjson.dumps(events))
        chosen += 1
        if chosen == LANDING_DAYS:
            break
    member_id, campaign_id, cycle, arm, email = campaign
    reactions = [{"event": kind, "email": email, "timestamp": 1795000000 + n, "sg_event_id": f"privacy-test-{n}",
                  "sg_message_id": "privacy-test.msg", "member_id": str(member_id), "campaign_id": campaign_id,
                  "cycle": cycle, "arm": arm, "ip": "203.0.113.9", "useragent": "Mozilla/5.0"}
                 for n, kind in enumerate(("delivered", "click"))]
    return reactions


def build_world(association: Path, warehouse: Path, root: Path) -> World:
    home = root / "home"
    home.mkdir(parents=True)
    shutil.copy(warehouse, home / "warehouse.duckdb")
    shutil.copytree(warehouse.parent / "models", home / "models")
    resource = WarehouseResource(path=str(home / "warehouse.duckdb"))
    _run_outbox_wave(home, resource)
    from alumni_orchestration.privacy.file_stores import model_rows

    everyone = Subject(frozenset(range(0, 100_000)), frozenset())
    in_model = {int(r["member_id"]) for rows in model_rows(home / "models", everyone).values() for r in rows}
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:
        member_id = _choose_member(conn, in_model)
        subject = find_subject(conn, member_id)
        campaign_id, cycle, arm = conn.execute("select campaign_id, cycle, arm from campaigns.campaign_sends "
                                               "where member_id = ?", [member_id]).fetchone()
        email = conn.execute("select email from raw.members where member_id = ?", [member_id]).fetchone()[0]
        reactions = _land_member_days(association, home / "landing" / "sendgrid", subject,
                                      (member_id, campaign_id, cycle, arm, email))
        Landing(home / "landing" / "sendgrid").write_batch("2026-11-22", "1795000000000000000-reactions.json",
                                                           orjson.dumps(reactions))
        conn.execute("""insert into raw.sendgrid_events (sg_event_id, partition_date, event, event_at, email,
                            sg_message_id, ip, useragent, sg_machine_open, member_id, campaign_id, cycle, arm,
                            batch_name)
                        select r.sg_event_id, date '2026-11-22', r.event, to_timestamp(r.timestamp)::timestamp,
                               r.email, r.sg_message_id, r.ip, r.useragent, false, r.member_id, r.campaign_id,
                               r.cycle, r.arm, '1795000000000000000-reactions.json'
                        from (select unnest(?, recursive := true)) r""", [reactions])
        members = conn.execute("select member_id, first_name, last_name, email from raw.members order by 1").df()
    (home / "exports").mkdir()
    members.to_csv(home / "exports" / "members.csv", index=False)
    segments = [{"member_id": int(m), "email": e, "segment": "exported"} for m, e in
                zip(members.member_id[:50].tolist() + [member_id], members.email[:50].tolist() + [email], strict=True)]
    (home / "exports" / "segments.json").write_text(json.dumps({"members": segments}))
    (home / "logs").mkdir()
    (home / "logs" / "webhook.log").write_text(
        "".join(f"landed batch for {e}\n" for e in members.email[:20]) + f"bounce for {email}\nreceiver stopped\n")
    return World(home, association, member_id, subject)


def find_member(world: World, instance: dg.DagsterInstance | None = None) -> dict[str, list[str]]:
    """Everywhere the member shows: warehouse tables and views, files under $ALUMNI_HOME (bytes), saved
    models, and the Dagster event log of every run."""
    with duckdb.connect(str(world.warehouse), read_only=True) as conn:
        tables = sorted(scan_warehouse(conn, world.subject))
    found = {"warehouse": tables, "files": scan_files(world.home, world.subject),
             "models": scan_models(world.home / "models", world.subject)}
    if instance is not None:
        needles = world.subject.needles()
        found["event_log"] = [str(record.run_id) for run in instance.get_runs() for record in instance.all_logs(run.run_id)
                              if any(n in str(record).lower() for n in needles)]
    return {k: v for k, v in found.items() if v}
