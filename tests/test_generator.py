"""The synthetic association: deterministic, realistic in difficulty, warts where declared."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.metrics import roc_auc_score

from alumni_orchestration.synthetic import behaviour as bh
from alumni_orchestration.synthetic.generator import GeneratorConfig, generate_association
from alumni_orchestration.synthetic.membership_schema import MEMBERSHIP_TABLES
from alumni_orchestration.synthetic.taxonomy import LIFE_STAGES, TOPICS
from tests.conftest import TEST_END_DATE


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-m", "alumni_orchestration.cli", "generate", "--members", "300",
                        "--years", "2", "--seed", "5", "--out", str(tmp_path / name), "--end-date", TEST_END_DATE],
                       check=True, capture_output=True)
    first, second = _tree_digest(tmp_path / "a"), _tree_digest(tmp_path / "b")
    assert "membership.sqlite" in first and "providers/helloasso/orders.jsonl" in first
    assert first == second


@pytest.mark.slow
def test_another_seed_gives_another_association(tmp_path: Path) -> None:
    generate_association(tmp_path / "a", GeneratorConfig(members=200, years=1, seed=1, end_date=TEST_END_DATE))
    generate_association(tmp_path / "b", GeneratorConfig(members=200, years=1, seed=2, end_date=TEST_END_DATE))
    assert _tree_digest(tmp_path / "a")["ground_truth/members.csv"] != _tree_digest(tmp_path / "b")["ground_truth/members.csv"]


@pytest.mark.slow
def test_oracle_auc_on_next_cycle_dues_is_realistic(tmp_path: Path) -> None:
    manifest = generate_association(tmp_path, GeneratorConfig(members=4000, years=3, seed=3, end_date=TEST_END_DATE))
    truth = pd.read_csv(tmp_path / "ground_truth/dues_probabilities.csv")
    for cycle in (manifest["dues_cycles"]["current"] - 1, manifest["dues_cycles"]["next_hidden"]):
        year = truth[truth.dues_year == cycle]
        auc = roc_auc_score(year.paid, year.p_pay)
        assert 0.75 <= auc <= 0.90, (cycle, auc)


@pytest.mark.slow
def test_membership_tables_and_counts_match_manifest(small_association: Path) -> None:
    manifest = json.loads((small_association / "manifest.json").read_text())
    with sqlite3.connect(small_association / "membership.sqlite") as conn:
        for table in MEMBERSHIP_TABLES:
            (count,) = conn.execute(f'select count(*) from "{table.name}"').fetchone()
            assert count == manifest["counts"][table.name] > 0, table.name
        stages = {row[0] for row in conn.execute("select status from members")}
        assert stages == {"active", "lapsed", "left", "deceased"}
        (accents,) = conn.execute("select count(*) from members where first_name glob '*[éèëïîôç]*'").fetchone()
        assert accents > 0


@pytest.mark.slow
def test_declared_warts_are_really_in_the_data(small_association: Path) -> None:
    warts = json.loads((small_association / "manifest.json").read_text())["warts"]
    with sqlite3.connect(small_association / "membership.sqlite") as conn:
        (orphans,) = conn.execute(
            "select count(*) from dues_payments where member_id not in (select member_id from members)").fetchone()
        (missing,) = conn.execute("select count(*) from members where email is null").fetchone()
        (dupes,) = conn.execute(
            "select count(*) - count(distinct lower(trim(email))) from members where email is not null").fetchone()
        (impossible,) = conn.execute(
            "select count(*) from dues_payments p join members m using (member_id) "
            "where p.paid_on > date('now', '+1 year') or p.paid_on < m.birth_date").fetchone()
    assert orphans == warts["orphan_payment"] > 0
    assert missing == warts["missing_email"] > 0
    assert dupes == warts["duplicate_member_email"] > 0
    assert impossible == warts["impossible_payment_date"] > 0
    events = [json.loads(line) for f in (small_association / "providers/sendgrid/events").glob("*.jsonl")
              for line in f.read_text().splitlines()]
    ids = [e.get("sg_event_id") for e in events]
    assert sum(1 for i in ids if i is None) == warts["missing_sg_event_id"] > 0
    assert len(ids) - len(set(ids)) - max(0, sum(1 for i in ids if i is None) - 1) == warts["duplicate_webhook_event"]
    assert sum(e["event"].startswith("legacy_") for e in events) == warts["unknown_event_type"] > 0
    assert any(e.get("sg_machine_open") for e in events)
    assert all(e["category"] in (["newsletter"], ["dues_call"]) for e in events)


@pytest.mark.slow
def test_ground_truth_covers_every_member_and_provider_record(small_association: Path) -> None:
    members = pd.read_csv(small_association / "ground_truth/members.csv")
    assert set(members.life_stage) == set(LIFE_STAGES)
    prefs = pd.read_csv(small_association / "ground_truth/topic_preferences.csv")
    assert set(prefs.topic) == set(TOPICS)
    np.testing.assert_allclose(prefs.groupby("member_id").weight.sum(), 1.0, atol=1e-4)
    attributions = pd.read_csv(small_association / "ground_truth/attributions.csv", dtype=str, keep_default_na=False)
    attendees = [json.loads(line) for line in (small_association / "providers/eventbrite/attendees.jsonl").read_text().splitlines()]
    keyed = set(attributions[attributions.source == "eventbrite_attendee"].record_key)
    assert {a["id"] for a in attendees} == keyed
    assert (attributions.member_id == "").any(), "guests who are not members must exist"


def test_hash_uniform_is_deterministic_and_uniform() -> None:
    u = bh.hash_uniform(42, np.arange(100_000), 2026)
    assert np.array_equal(u, bh.hash_uniform(42, np.arange(100_000), 2026))
    assert abs(u.mean() - 0.5) < 0.01 and 0 <= u.min() and u.max() < 1


@pytest.mark.slow
@pytest.mark.postgres
def test_membership_database_loads_into_postgres_with_identical_counts(tmp_path: Path, postgres_database: str) -> None:
    config = GeneratorConfig(members=500, years=2, seed=9, end_date=TEST_END_DATE)
    generate_association(tmp_path / "sqlite", config)
    generate_association(tmp_path / "pg", config, membership_url=postgres_database)
    sqlite_engine = sa.create_engine(f"sqlite:///{tmp_path / 'sqlite' / 'membership.sqlite'}")
    pg_engine = sa.create_engine(postgres_database)
    try:
        for table in MEMBERSHIP_TABLES:
            query = sa.text(f'select count(*) from "{table.name}"')
            with sqlite_engine.connect() as s, pg_engine.connect() as p:
                assert s.execute(query).scalar() == p.execute(query).scalar() > 0, table.name
        with sqlite_engine.connect() as s, pg_engine.connect() as p:
            q = sa.text("select sum(amount_eur), min(paid_on), max(member_id) from dues_payments")
            lite, post = s.execute(q).one(), p.execute(q).one()
            assert float(lite[0]) == pytest.approx(float(post[0])) and str(lite[1]) == str(post[1]) and lite[2] == post[2]
    finally:
        sqlite_engine.dispose()
        pg_engine.dispose()
    assert not (tmp_path / "pg" / "membership.sqlite").exists()
