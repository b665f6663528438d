"""The file stores and the row matching of an erasure, on small hand-made data (fast tier)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import orjson
import pandas as pd

from alumni_orchestration.privacy.file_stores import erase_file, erase_landing, erase_logs, mentions
from alumni_orchestration.privacy.subject import Subject, email_sha256, row_condition
from alumni_orchestration.privacy.warehouse_stores import compact_warehouse, erase_tables
from alumni_orchestration.webhook.landing import Landing

EMAIL = "Marie.Curie@Example.org"
SUBJECT = Subject(frozenset({42}), frozenset({email_sha256(EMAIL)}), frozenset({EMAIL.lower()}),
                  frozenset({("marie", "curie")}))
HASHES_ONLY = Subject(frozenset({42}), frozenset({email_sha256(EMAIL)}))


def test_mentions_finds_an_address_by_its_hash_a_full_name_or_a_member_id_field() -> None:
    assert mentions(f"bounce for <{EMAIL.upper()}>", HASHES_ONLY)
    assert mentions('{"member_id": "42", "x": 1}', HASHES_ONLY)
    assert not mentions('{"member_id": "420"} other@example.org', HASHES_ONLY)
    assert mentions("Dear Marie Curie,", SUBJECT) and not mentions("Dear Marie,", SUBJECT)


def test_landing_rewrite_drops_the_member_and_anonymises_campaign_events(tmp_path: Path) -> None:
    landing = Landing(tmp_path)
    batch = [{"event": "open", "email": EMAIL, "sg_event_id": "a", "timestamp": 1790000000},
             {"event": "click", "email": "x@example.org", "sg_event_id": "b", "timestamp": 1790000000},
             {"event": "delivered", "email": EMAIL, "sg_event_id": "c", "timestamp": 1790000000, "member_id": "42",
              "campaign_id": "dues_reminder", "cycle": "2026-r1", "arm": "treatment", "ip": "203.0.113.1"}]
    landing.write_batch("2026-11-20", "1-abc.json", orjson.dumps(batch))
    landing.write_batch("2026-11-21", "2-def.json", orjson.dumps(batch[1:2]))
    counts = erase_landing(tmp_path, HASHES_ONLY, {42: -7})
    assert counts == {"files_rewritten": 1, "landing_events": 2}
    kept = orjson.loads(landing.read_batch("2026-11-20", "1-abc.json"))
    assert [e["sg_event_id"] for e in kept] == ["b", "c"]
    assert kept[1] == {"event": "delivered", "sg_event_id": "c", "timestamp": 1790000000, "member_id": "-7",
                       "campaign_id": "dues_reminder", "cycle": "2026-r1", "arm": "treatment"}
    assert not list(tmp_path.rglob(".tmp-*"))  # rewritten through a temporary file renamed into place


def test_exports_lose_the_member_rows_and_keep_the_others(tmp_path: Path) -> None:
    csv = tmp_path / "members.csv"
    csv.write_text(f"member_id,name,email\n1,Ada,ada@example.org\n42,Marie Curie,{EMAIL}\n43,X,x@example.org\n")
    document = tmp_path / "segment.json"
    document.write_text(json.dumps({"segment": "a", "members": [{"member_id": 42}, {"member_id": 1}]}))
    access = tmp_path / "access.json"
    access.write_text(json.dumps({"member_id": 42, "profile": {}}))
    parquet = tmp_path / "scores.parquet"
    pd.DataFrame({"member_id": [1, 42], "email": ["ada@example.org", EMAIL]}).to_parquet(parquet)
    assert [erase_file(p, HASHES_ONLY) for p in (csv, document, access, parquet)] == [1, 1, 1, 1]
    assert csv.read_text() == "member_id,name,email\n1,Ada,ada@example.org\n43,X,x@example.org\n"
    assert json.loads(document.read_text())["members"] == [{"member_id": 1}]
    assert not access.exists() and pd.read_parquet(parquet).member_id.tolist() == [1]


def test_logs_lose_the_lines_that_mention_the_member(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "webhook.log"
    log.write_text(f"started\nbounce for {EMAIL}\nstopped\n")
    assert erase_logs(tmp_path, SUBJECT)["lines"] == 1
    assert log.read_text() == "started\nstopped\n"


def test_rows_are_found_by_id_email_hash_quoted_record_or_name_without_address() -> None:
    with duckdb.connect() as conn:
        conn.execute("create table t (member_id integer, email varchar, first_name varchar, last_name varchar, "
                     "payload varchar)")
        conn.execute(f"""insert into t values (42, null, null, null, null), (1, ' {EMAIL} ', null, null, null),
            (2, null, 'Marie', 'Curie', null), (3, 'other@example.org', 'Marie', 'Curie', null),
            (4, null, null, null, '{{"member_id": "42"}}'), (5, null, null, null, 'to: {EMAIL.lower()}'),
            (6, 'x@example.org', null, null, null)""")
        where, params = row_condition(["member_id", "email", "first_name", "last_name", "payload"], SUBJECT)
        found = [r[0] for r in conn.execute(f"select member_id from t where {where} order by 1", params).fetchall()]
    assert found == [1, 2, 4, 5, 42]  # 3 is a namesake with another address


def test_campaign_rows_are_anonymised_and_the_file_keeps_no_deleted_bytes(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("create schema campaigns; create schema raw")
        conn.execute("create table campaigns.campaign_sends (campaign_id varchar, cycle varchar, member_id integer "
                     "not null, arm varchar, status varchar, detail varchar, primary key (campaign_id, cycle, member_id))")
        conn.execute("insert into campaigns.campaign_sends values ('c', '1', 42, 'treatment', 'outboxed', null), "
                     "('c', '1', 7, 'control', 'held_out', null)")
        conn.execute("create table raw.members (member_id integer, email varchar)")
        conn.execute(f"insert into raw.members values (42, '{EMAIL}'), (7, 'x@example.org')")
        assert erase_tables(conn, "warehouse.campaigns", HASHES_ONLY, {42: -5}) == {
            "anonymised:campaigns.campaign_sends": 1}
        assert erase_tables(conn, "warehouse.raw", HASHES_ONLY, {42: -5}) == {"erased:raw.members": 1}
        sends = conn.execute("select member_id, arm from campaigns.campaign_sends order by 1").fetchall()
    assert sends == [(-5, "treatment"), (7, "control")]
    compact_warehouse(path)
    assert EMAIL.encode() not in path.read_bytes()
    with duckdb.connect(str(path), read_only=True) as conn:
        assert conn.execute("select count(*) from raw.members").fetchone()[0] == 1


def test_an_erased_address_is_suppressed_in_campaign_audiences(tmp_path: Path) -> None:
    """member_facts (defs/campaigns/assets.py) marks as suppressed a member whose id or address was erased."""
    from alumni_orchestration.defs.campaigns.assets import member_facts
    from alumni_orchestration.privacy.subject import ensure_privacy_tables

    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        conn.execute("create schema staging; create schema marts; create schema scoring")
        conn.execute("create table staging.stg_sendgrid__suppressions (email varchar)")
        conn.execute("create table staging.stg_membership__members as select * from (values "
                     f"(1, '{EMAIL.lower()}', 'active', true, 'valid'), (2, 'x@example.org', 'active', true, 'valid'),"
                     " (3, 'y@example.org', 'active', true, 'valid')) "
                     "t(member_id, email, status, consent_email, email_status)")
        conn.execute("create table marts.member_profile (member_id integer, paid_current_cycle boolean)")
        conn.execute("create table scoring.member_score_history (member_id integer, as_of date, "
                     "paid_current_cycle boolean)")
        before = member_facts(conn, dt.date(2026, 11, 22))
        ensure_privacy_tables(conn)
        conn.execute("insert into privacy.erased_members values (42, ?, now(), 'e1'), (3, null, now(), 'e2')",
                     [email_sha256(EMAIL)])
        after = member_facts(conn, dt.date(2026, 11, 22))
    assert not before.suppressed.any()
    assert dict(zip(after.member_id, after.suppressed, strict=True)) == {1: True, 2: False, 3: True}
