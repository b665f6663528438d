"""The weekly digest: its wording, counts only by default, and its figures checked against the tables."""

from __future__ import annotations

import datetime as dt
import re
import shutil

import dagster as dg
import duckdb
import pandas as pd
import pytest

from alumni_orchestration.workbench.digest import DigestFacts, compose_digest, list_changes

DUES = {"payers": 312, "eur": 24285.0, "rate": 0.2254, "payers_last_year": 280, "eur_last_year": 22365.0,
        "rate_last_year": 0.2397, "week_payers": 1, "week_payers_last_year": 3}


def _facts(**changes) -> DigestFacts:
    base = dict(as_of=dt.date(2026, 11, 22), new_ambassadors=5, turned_at_risk=7, ambassadors=226, at_risk=108,
                dues=DUES, campaigns=["dues_reminder 2026: worked: +4.0 points of dues paid."],
                failed_runs=["alumni_main (run 1a2b3c4d)"], quality_warnings=["49 rows quarantined from members"],
                exports_folder="/srv/alumni/exports/2026-11-22", ui_url="http://dagster.example:3000/")
    return DigestFacts(**{**base, **changes})


def test_the_digest_says_what_changed_in_a_few_lines_with_links() -> None:
    subject, text = compose_digest(_facts())
    assert subject == "[alumni] Weekly digest — week to 2026-11-22"
    assert "- New ambassadors: 5 (now 226)." in text
    assert "- Members turned at-risk: 7 (now 108)." in text
    assert "Dues: 312 members paid this cycle (24,285 €), 23% of paying members against 24% on the same day " \
           "last year (-1 points; 22,365 € then). This week: 1 payment, against 3 in the same week last year." in text
    assert "- dues_reminder 2026: worked: +4.0 points of dues paid." in text
    assert "Failed runs this week: 1\n- alumni_main (run 1a2b3c4d)" in text
    assert "/srv/alumni/exports/2026-11-22" in text and "http://dagster.example:3000/assets/workbench" in text
    assert len(text.splitlines()) < 30
    assert "names" not in compose_digest(_facts())[1].split("New ambassadors: 5")[1].split("\n")[0]


def test_names_only_when_the_lead_opted_in_and_never_emails() -> None:
    _, text = compose_digest(_facts(new_ambassador_names=["Aurélie Lefèvre (2001)"]))
    assert "New ambassadors: Aurélie Lefèvre (2001)." in text
    assert "@" not in text.replace("http://", "")


def test_list_changes_compare_with_the_latest_snapshot_a_week_older() -> None:
    history = pd.DataFrame({"as_of": [dt.date(2026, 11, 10)] * 2 + [dt.date(2026, 11, 15)] * 2
                            + [dt.date(2026, 11, 22)] * 3, "list_name": "ambassadors",
                            "member_id": [1, 2, 1, 3, 1, 3, 4]})
    now, new = list_changes(history, "ambassadors", dt.date(2026, 11, 22))
    assert now == {1, 3, 4} and new == {4}  # against 11-15, exactly a week before
    assert list_changes(history, "ambassadors", dt.date(2026, 11, 15))[1] is None


@pytest.mark.slow
def test_the_digest_in_the_outbox_matches_the_tables(scored_association, tmp_path, monkeypatch) -> None:
    from alumni_orchestration.defs.campaigns.resources import EmailSenderResource
    from alumni_orchestration.defs.scoring.resources import ScoringResource
    from alumni_orchestration.defs.warehouse.resources import WarehouseResource
    from alumni_orchestration.defs.workbench.digest import weekly_digest_job
    from alumni_orchestration.defs.workbench.lists import member_lists
    from alumni_orchestration.defs.workbench.reasons import member_score_reasons

    _, source = scored_association
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(source, warehouse)
    monkeypatch.setenv("ALUMNI_HOME", str(tmp_path / "home"))
    for name in ("SENDGRID_API_KEY", "ALUMNI_SEND_MODE"):
        monkeypatch.delenv(name, raising=False)
    resource = WarehouseResource(path=str(warehouse))
    assert dg.materialize([member_score_reasons, member_lists], resources={
        "warehouse": resource, "scoring": ScoringResource(model_dir=str(source.parent / "models"))}).success
    with duckdb.connect(str(warehouse)) as conn:  # a week earlier: the same lists minus a few members
        conn.execute("insert into workbench.list_history select as_of - 7, list_name, member_id "
                     "from workbench.list_history where member_id % 10 <> 0")
        as_of = conn.execute("select max(as_of) from workbench.list_history").fetchone()[0]
        expected_new = conn.execute("select count(*) from workbench.list_history where list_name = 'ambassadors' "
                                    "and as_of = ? and member_id % 10 = 0", [as_of]).fetchone()[0]
        ambassadors = conn.execute("select count(*) from scoring.member_scores where is_ambassador").fetchone()[0]
        at_risk = conn.execute("select count(*) from workbench.at_risk").fetchone()[0]
        payers, eur = conn.execute(
            "select count(distinct d.member_id), sum(d.amount_eur) from marts.dues_history d "
            "join staging.stg_membership__members m using (member_id) where d.paid and d.dues_year = year(?) "
            "and d.first_paid_on <= ? and m.joined_on <= ? and (m.left_on is null or m.left_on > ?) "
            "and d.member_id not in (select member_id from marts.dues_history where tier = 'lifetime' "
            "and first_paid_on <= ?)", [as_of] * 5).fetchone()
    result = weekly_digest_job.execute_in_process(resources={
        "warehouse": resource, "email_sender": EmailSenderResource(warehouse=resource)})
    assert result.success
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        subject, text = conn.execute("select subject, text from campaigns.outbox where subject like "
                                     "'%Weekly digest%'").fetchone()
        emails = [r[0] for r in conn.execute("select email from staging.stg_membership__members "
                                             "where email is not null").fetchall()]
    assert expected_new > 0
    assert f"- New ambassadors: {expected_new} (now {ambassadors:,})." in text
    assert f"(now {at_risk:,})." in text.split("Members turned at-risk: ")[1].split("\n")[0]
    dues = re.search(r"Dues: ([\d,]+) members? paid this cycle \(([\d,]+) €\)", text)
    assert dues and int(dues.group(1).replace(",", "")) == payers
    assert int(dues.group(2).replace(",", "")) == round(eur)
    assert str(as_of) in subject
    assert not any(email in text for email in emails)
