"""The member lists, their exports and `alumni export`: rules, consent, columns, files the team can open."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from openpyxl import load_workbook

from alumni_orchestration.workbench.exports import CSV_ENCODING, export_list, read_csv, select
from alumni_orchestration.workbench.lists import (
    LISTS,
    PERSON_COLUMNS,
    REASON_COLUMNS,
    SCORE_COLUMNS,
    ListInputs,
    build_lists,
)


def _inputs() -> ListInputs:
    ids = [1, 2, 3, 4, 5]
    people = pd.DataFrame({"member_id": ids, "first_name": ["Aurélie", "Zoé", "Jérôme", "Anaïs", "François"],
                           "last_name": ["Lefèvre", "Dupré", "Gaël", "Noël", "Çelik"],
                           "email": [f"m{i}@example.org" for i in ids], "graduation_year": [1990, 2015, 2001, 1985, 2020],
                           "region": ["Île-de-France"] * 5, "consent_email": [True, False, True, True, True],
                           "consent_newsletter": [True, True, False, True, True],
                           "email_status": ["valid", "valid", "valid", "invalid", "valid"],
                           "suppressed": [False, False, False, False, True]})
    scores = pd.DataFrame({"member_id": ids, "segment": ["late_career", "young_alumni", "mid_career", "retired",
                                                         "students"],
                           "engagement_score": [95.0, 88.0, 20.0, 50.0, 10.0],
                           "engagement_percentile": [0.95, 0.88, 0.2, 0.5, 0.1],
                           "engagement_trend": [1.0, -9.0, -2.0, None, 0.5],
                           "dues_propensity": [0.9, 0.4, 0.2, 1.0, 0.6],
                           "dues_propensity_percentile": [0.9, 0.4, 0.2, 1.0, 0.6],
                           "is_ambassador": [True, True, False, False, False],
                           "volunteer_candidate": [False, True, False, False, False],
                           "active_modes": [4, 3, 1, 2, 1], "top_interests": ["[]"] * 5})
    reasons = pd.DataFrame({"member_id": ids, "engagement_reason": ["comes to events"] * 5,
                            "dues_reasons": ["paid the last 3 years (+20 pts)"] * 5})
    dues = pd.DataFrame({"member_id": ids, "paid_current_cycle": [True, False, False, False, False],
                         "current_dues_tier": ["annual", "student", "annual", "lifetime", "student"]})
    interests = pd.DataFrame({"member_id": [1, 1, 2, 4, 5, 3], "topic": ["sport", "finance", "sport", "sport",
                                                                        "sport", "sport"],
                              "affinity": [0.5, 0.3, 0.9, 0.8, 0.7, 0.6]})
    reminders = pd.DataFrame({"member_id": [2], "reminders_sent": [2], "last_reminder_on": [pd.Timestamp("2026-03-15")]})
    return ListInputs(people, scores, reasons, dues, interests, reminders)


def test_each_list_applies_its_rule_and_names_it() -> None:
    lists = build_lists(_inputs())
    assert set(lists) == set(LISTS)
    assert list(lists["ambassadors"].member_id) == [1, 2]
    assert list(lists["volunteer_candidates"].member_id) == [2]
    assert list(lists["at_risk"].member_id) == [2, 3]  # falling by 8+, or below 25 and falling
    assert list(lists["dues_due"].member_id) == [5, 2, 3]  # unpaid, not lifetime, by propensity
    assert lists["dues_due"].set_index("member_id").reminders_sent.to_dict() == {5: 0, 2: 2, 3: 0}
    for frame in lists.values():
        assert frame.list_filter.nunique() == 1 and len(frame.list_filter.iloc[0]) > 20
        assert set(PERSON_COLUMNS + SCORE_COLUMNS + REASON_COLUMNS) <= set(frame.columns)


def test_emails_are_shown_only_where_consent_allows() -> None:
    lists = build_lists(_inputs())
    ambassadors = lists["ambassadors"].set_index("member_id")
    assert ambassadors.loc[1, "email"] == "m1@example.org"
    assert ambassadors.loc[2, "email"] == "" and ambassadors.loc[2, "contact_note"] == "no email consent"
    # The newsletter audience keeps only members with newsletter consent, a valid address and no suppression.
    audience = lists["interest_audiences"]
    assert list(audience[audience.topic == "sport"].member_id) == [2, 1]
    assert list(audience[audience.topic == "sport"].rank_in_topic) == [1, 2]
    assert audience.contactable.all() and (audience.email != "").all()


def test_csv_and_xlsx_round_trip_accented_names(tmp_path: Path) -> None:
    frame = build_lists(_inputs())["ambassadors"]
    csv_path, xlsx_path = export_list(frame, tmp_path, "ambassadors")
    raw = csv_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM French Excel needs to read UTF-8
    assert raw.decode(CSV_ENCODING).splitlines()[0].split(";")[:3] == ["member_id", "first_name", "last_name"]
    back = read_csv(csv_path)
    assert list(back.first_name) == ["Aurélie", "Zoé"] and list(back.last_name) == ["Lefèvre", "Dupré"]
    assert list(back.engagement_score) == [95.0, 88.0]
    sheet = load_workbook(xlsx_path).active
    assert [c.value for c in sheet[1]][:3] == ["member_id", "first_name", "last_name"]
    assert sheet.freeze_panes == "A2" and sheet["B2"].value == "Aurélie"
    assert sheet.column_dimensions["U"].width >= len("list_filter")
    assert pd.read_excel(xlsx_path).last_name.tolist() == ["Lefèvre", "Dupré"]


def test_select_filters_segment_and_topic_and_refuses_a_topic_on_a_list_without_topics() -> None:
    lists = build_lists(_inputs())
    assert list(select(lists["ambassadors"], segment="young_alumni").member_id) == [2]
    assert set(select(lists["interest_audiences"], topic="finance").member_id) == {1}
    with pytest.raises(ValueError, match="interest_audiences only"):
        select(lists["ambassadors"], topic="sport")


# --- on a scored association --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def listed(scored_association, tmp_path_factory) -> tuple[Path, Path, dg.ExecuteInProcessResult]:
    from alumni_orchestration.defs.scoring.resources import ScoringResource
    from alumni_orchestration.defs.warehouse.resources import WarehouseResource
    from alumni_orchestration.defs.workbench.exports import list_exports
    from alumni_orchestration.defs.workbench.lists import member_lists
    from alumni_orchestration.defs.workbench.reasons import member_score_reasons

    _, source = scored_association
    root = tmp_path_factory.mktemp("lists")
    warehouse, home = root / "warehouse.duckdb", root / "home"
    shutil.copy(source, warehouse)
    resources = {"warehouse": WarehouseResource(path=str(warehouse)),
                 "scoring": ScoringResource(model_dir=str(source.parent / "models"))}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALUMNI_HOME", str(home))
        result = dg.materialize([member_score_reasons, member_lists, list_exports], resources=resources)
    assert result.success
    return warehouse, home, result


@pytest.mark.slow
def test_the_ambassador_list_is_exactly_the_flagged_members_and_every_list_has_its_columns(listed) -> None:
    warehouse, _, _ = listed
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        flagged = {r[0] for r in conn.execute("select member_id from scoring.member_scores where is_ambassador").fetchall()}
        listed_ids = [r[0] for r in conn.execute("select member_id from workbench.ambassadors").fetchall()]
        frames = {name: conn.execute(f"select * from workbench.{name}").df() for name in LISTS}
    assert len(listed_ids) == len(set(listed_ids)) == len(flagged) > 50
    assert set(listed_ids) == flagged
    for name, frame in frames.items():
        assert len(frame) > 0, name
        assert set(PERSON_COLUMNS + SCORE_COLUMNS + REASON_COLUMNS + ["list_filter"]) <= set(frame.columns), name
        assert (frame.dues_reasons != "").mean() > 0.95, name
        assert (frame.email[~frame.contactable] == "").all(), name


@pytest.mark.slow
def test_nightly_exports_open_with_openpyxl_and_pandas_and_metadata_holds_no_personal_data(listed) -> None:
    warehouse, home, result = listed
    folders = list((home / "exports").iterdir())
    assert len(folders) == 1
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        people = conn.execute("select email, first_name, last_name from staging.stg_membership__members "
                              "where email is not null").df()
        ambassadors = conn.execute("select * from workbench.ambassadors").df()
    for name in LISTS:
        csv = read_csv(folders[0] / f"{name}.csv")
        book = load_workbook(folders[0] / f"{name}.xlsx", read_only=True)
        assert book.active.max_row == len(csv) + 1
        assert list(pd.read_excel(folders[0] / f"{name}.xlsx").columns) == list(csv.columns)
    exported = read_csv(folders[0] / "ambassadors.csv")
    assert exported.last_name.tolist() == ambassadors.last_name.tolist()  # accents and all
    metadata = json.dumps([{k: str(v.value) for k, v in e.event_specific_data.materialization.metadata.items()}
                           for e in result.get_asset_materialization_events()])
    logs = " ".join(str(e.message) for e in result.all_events if e.message)
    for text in (metadata, logs):
        assert not any(email in text for email in people.email.head(500))
        assert not any(f"{f} {last}" in text for f, last in zip(people.first_name, people.last_name, strict=True))


@pytest.mark.slow
def test_alumni_export_writes_one_segment_on_demand(listed, monkeypatch, capsys) -> None:
    from alumni_orchestration.cli import main

    warehouse, home, _ = listed
    monkeypatch.setenv("ALUMNI_HOME", str(home))
    monkeypatch.setenv("ALUMNI_WAREHOUSE", str(warehouse))
    assert main(["export", "interest_audiences", "--topic", "sport", "--segment", "retired"]) == 0
    written = sorted(home.glob("exports/*/interest_audiences-retired-sport.*"))
    assert [p.suffix for p in written] == [".csv", ".xlsx"]
    frame = read_csv(written[0])
    assert len(frame) > 0 and set(frame.topic) == {"sport"} and set(frame.segment) == {"retired"}
    assert "@" not in capsys.readouterr().out
    assert main(["export", "nobody"]) == 2
