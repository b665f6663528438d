"""Lifecycle campaigns, pure: who is greeted on which day (birthdays, class anniversaries, welcomes), exactly once
per member and cycle over a simulated year, never without consent, at 08:00 Paris outside quiet hours, under the
daily cap; their messages in French and English; their outcome in the results."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from alumni_orchestration.campaigns.audience import INCLUDED
from alumni_orchestration.campaigns.content import Sender, mail_request, render
from alumni_orchestration.campaigns.definitions import campaigns
from alumni_orchestration.campaigns.holdout import CONTROL, TREATMENT
from alumni_orchestration.campaigns.lifecycle import class_events, window_days
from alumni_orchestration.campaigns.results import Costs, campaign_results, outcomes_within_window
from alumni_orchestration.campaigns.send_window import PARIS, is_quiet, next_send_time
from alumni_orchestration.campaigns.waves import build_audience, wave_candidates
from alumni_orchestration.contracts import mail_send_errors

BIRTHDAY, ANNIVERSARY, WELCOME = "birthday_greeting", "class_anniversary", "welcome_sequence"
SENDER = Sender(from_email="contact@anciens-exemple.fr", from_name="Association", organization="anciens-exemple")


def _members(n: int = 160, seed: int = 18) -> pd.DataFrame:
    """Generated members, their dates dense where the tests look: birthdays from 20 December to 10 January and
    around 29 February, classes 1970-2024, joinings in early March 2026."""
    rng = np.random.default_rng(seed)
    year_end = pd.Timestamp("1970-12-20") + pd.to_timedelta(rng.integers(0, 22, n), unit="D")
    leap = pd.Timestamp("1972-02-26") + pd.to_timedelta(rng.integers(0, 5, n), unit="D")
    birth = year_end.where(np.arange(n) % 3 != 0, leap) + pd.to_timedelta(365 * 4 * rng.integers(0, 10, n), unit="D")
    return pd.DataFrame({
        "member_id": np.arange(1, n + 1),
        "birth_date": birth.date,
        "graduation_year": rng.integers(1970, 2025, n),
        "joined_on": (pd.Timestamp("2026-03-01") + pd.to_timedelta(rng.integers(0, 10, n), unit="D")).date,
        "status": np.where(np.arange(n) % 41 == 0, "left", "active"),
        "consent_email": np.arange(n) % 5 != 0,
        "email_valid": True, "suppressed": False, "paid_current_cycle": False,
    })


def _history(members: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """The wave's two snapshots (the day before and the day), each member with their dates."""
    dates = members[["member_id", "birth_date", "graduation_year", "joined_on"]]
    return pd.concat([dates.assign(as_of=pd.Timestamp(d), engagement_score=50.0, dues_propensity=0.5,
                                   paid_current_cycle=False) for d in (day - dt.timedelta(days=1), day)])


def _run_days(campaign, members: pd.DataFrame, days: list[dt.date], sends: pd.DataFrame | None = None,
              skip: set[dt.date] = frozenset()) -> pd.DataFrame:
    """Waves on `days` (none on `skip`: a missed nightly run), every third one run twice; returns the ledger."""
    ledger = pd.DataFrame(columns=["member_id", "campaign_id", "cycle", "period", "as_of", "step", "arm", "stratum",
                                   "trigger", "sent_at", "marketing"])
    others = sends if sends is not None else ledger.iloc[:0]
    for index, day in enumerate(days):
        if day in skip:
            continue
        previous = day - dt.timedelta(days=1)  # the blocks of days between tests' blocks were sent
        while previous in skip:  # a missed nightly run left no snapshot
            previous -= dt.timedelta(days=1)
        history = _history(members, day)
        history.loc[history.as_of == pd.Timestamp(day - dt.timedelta(days=1)), "as_of"] = pd.Timestamp(previous)
        for _run in range(2 if index % 3 == 0 else 1):
            candidates = wave_candidates(campaign, history, ledger[ledger.campaign_id == campaign.campaign_id], day)
            earlier = pd.concat([others, ledger], ignore_index=True)
            earlier = earlier.assign(sent_at=pd.to_datetime(earlier.sent_at, utc=True),
                                     marketing=earlier.marketing.astype(bool))
            audience = build_audience(campaign, candidates, members, earlier, day,
                                      dt.datetime.combine(day, dt.time(0), PARIS))
            new = audience[audience.reason == INCLUDED]
            new = new.assign(sent_at=pd.Timestamp(dt.datetime.combine(day, dt.time(8), PARIS)).tz_convert("UTC"),
                             marketing=campaign.marketing)
            keys = set(zip(ledger.member_id, ledger.cycle, strict=True))
            new = new[np.array([(m, c) not in keys for m, c in zip(new.member_id, new.cycle, strict=True)],
                               dtype=bool)]  # the ledger's unique key
            ledger = pd.concat([ledger, new[ledger.columns]], ignore_index=True)
    return ledger


def _year(start: str, days: int) -> list[dt.date]:
    first = dt.date.fromisoformat(start)
    return [first + dt.timedelta(days=i) for i in range(days)]


def _celebrated(birth: dt.date, year: int) -> dt.date:
    """Independent of the code: 29 February is celebrated on 28 February outside leap years."""
    if (birth.month, birth.day) == (2, 29) and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        return dt.date(year, 2, 28)
    return dt.date(year, birth.month, birth.day)


@pytest.mark.slow  # a simulated run of waves: a few seconds
def test_birthday_greetings_go_out_on_the_birthday_once_a_year_and_never_without_consent() -> None:
    members = _members()
    campaign = campaigns()[BIRTHDAY]
    days = _year("2026-12-26", 10) + _year("2027-02-26", 3) + _year("2027-12-27", 8) + _year("2028-02-27", 3)
    ledger = _run_days(campaign, members, days)  # cycles 2026 to 2028, 2028 a leap year
    eligible = members[members.consent_email & (members.status == "active")]
    expected = {(m, str(d.year), d) for m, b in zip(eligible.member_id, eligible.birth_date, strict=True)
                for year in (2026, 2027, 2028) if (d := _celebrated(b, year)) in days}
    got = {(m, c, d) for m, c, d in zip(ledger.member_id, ledger.cycle, ledger.as_of, strict=True)}
    assert got == expected
    assert not ledger.duplicated(["member_id", "cycle"]).any()
    assert set(ledger.member_id) & set(members.member_id[~members.consent_email]) == set()
    assert {CONTROL, TREATMENT} == set(ledger.arm)  # the same holdout as every campaign
    leap = members.member_id[pd.to_datetime(members.birth_date).dt.strftime("%m-%d") == "02-29"]
    assert set(ledger[ledger.member_id.isin(leap)].as_of) == {dt.date(2027, 2, 28), dt.date(2028, 2, 29)}
    assert ledger.groupby(["member_id", pd.to_datetime(ledger.as_of).dt.year]).size().max() == 1


@pytest.mark.slow  # a simulated run of waves: a few seconds
def test_a_missed_wave_is_caught_up_by_the_next_one_within_catch_up_days() -> None:
    members = _members()
    campaign = campaigns()[BIRTHDAY]
    days = _year("2026-12-28", 8)
    full = _run_days(campaign, members, days)
    gapped = _run_days(campaign, members, days, skip={dt.date(2027, 1, 1)})
    assert set(zip(full.member_id, full.cycle, strict=True)) == set(zip(gapped.member_id, gapped.cycle, strict=True))
    late = gapped[gapped.member_id.isin(full[full.as_of == dt.date(2027, 1, 1)].member_id)]
    assert len(late) and set(late.as_of) == {dt.date(2027, 1, 2)} and set(late.cycle) == {"2027"}
    assert window_days(dt.date(2027, 3, 20), dt.date(2027, 3, 1), 3) == [dt.date(2027, 3, d) for d in (18, 19, 20)]


def test_class_anniversaries_on_the_round_years_only_on_their_day() -> None:
    members = _members()
    campaign = campaigns()[ANNIVERSARY]
    days = _year("2026-09-29", 4)
    ledger = _run_days(campaign, members, days)
    eligible = members[members.consent_email & (members.status == "active")]
    years_ago = 2026 - eligible.graduation_year
    assert set(ledger.member_id) == set(eligible.member_id[years_ago.isin([10, 20, 25, 50])])
    assert set(ledger.as_of) == {dt.date(2026, 10, 1)} and set(ledger.cycle) == {"2026"}
    assert set(ledger.trigger) <= {f"promo {2026 - y}: {y} years" for y in (10, 20, 25, 50)}
    custom = dataclasses.replace(campaign, lifecycle=dataclasses.replace(campaign.lifecycle, round_years=(5,)))
    fives = _run_days(custom, members, days[1:3])
    assert set(fives.member_id) == set(eligible.member_id[years_ago == 5])


@pytest.mark.slow  # a simulated run of waves: a few seconds
def test_welcome_sequence_the_day_after_joining_then_a_month_later() -> None:
    members = _members()
    campaign = campaigns()[WELCOME]
    ledger = _run_days(campaign, members, _year("2026-03-01", 12) + _year("2026-03-30", 12))
    eligible = members[members.consent_email & (members.status == "active")].set_index("member_id")
    for step, offset in ((1, 1), (2, 30)):
        due = eligible[[dt.date(2026, 3, 1) <= j + dt.timedelta(days=offset) <= dt.date(2026, 4, 10)
                        for j in eligible.joined_on]]
        mine = ledger[ledger.step == step].set_index("member_id")
        assert set(mine.index) == set(due.index)
        assert all(mine.as_of[m] == due.joined_on[m] + dt.timedelta(days=offset) for m in due.index)
        assert all(mine.cycle[m] == f"{due.joined_on[m].year}-w{step}" for m in due.index)
    both = ledger.groupby("member_id").arm.nunique()
    assert (both == 1).all()  # a member keeps their arm through the sequence


def test_the_greeting_leaves_at_eight_paris_or_the_next_moment_outside_quiet_hours() -> None:
    campaign = campaigns()[BIRTHDAY]
    night_run = dt.datetime(2026, 11, 20, 2, 30, tzinfo=PARIS)  # a Friday's nightly run
    at = next_send_time(night_run, not_before=campaign.not_before(dt.date(2026, 11, 20)))
    assert at == dt.datetime(2026, 11, 20, 8, 0, tzinfo=PARIS)
    sunday = next_send_time(dt.datetime(2026, 11, 22, 2, 30, tzinfo=PARIS),
                            not_before=campaign.not_before(dt.date(2026, 11, 22)))
    assert sunday == dt.datetime(2026, 11, 23, 8, 0, tzinfo=PARIS)  # Sundays are quiet all day
    late = next_send_time(dt.datetime(2026, 11, 20, 20, 55, tzinfo=PARIS),
                          not_before=campaign.not_before(dt.date(2026, 11, 20)))
    assert late == dt.datetime(2026, 11, 21, 8, 0, tzinfo=PARIS)
    for hour in range(24):
        moment = dt.datetime(2026, 11, 16, hour, 0, tzinfo=PARIS)
        assert not is_quiet(next_send_time(moment, not_before=campaign.not_before(moment.date())))


def test_greetings_are_not_marketing_but_count_in_the_one_message_a_day_cap() -> None:
    members = _members(20)
    campaign = campaigns()[BIRTHDAY]
    day = dt.date(2026, 6, 15)
    members = members.assign(birth_date=dt.date(1980, 6, 15), consent_email=True, status="active")
    moment = dt.datetime.combine(day, dt.time(0), PARIS)
    def sent(ids, when, marketing=True, messaged=True):
        return pd.DataFrame({"member_id": ids, "campaign_id": "dues_reminder", "cycle": "2026-r1", "period": "2026",
                             "sent_at": pd.Timestamp(when).tz_convert("UTC"), "marketing": marketing,
                             "messaged": messaged})
    earlier = pd.concat([
        sent([1, 2, 3], dt.datetime(2026, 6, 15, 9, 0, tzinfo=PARIS)),           # another campaign, the same day
        sent([4], dt.datetime(2026, 6, 15, 9, 0, tzinfo=PARIS), messaged=False),  # a control row: no message
        sent([5, 6] * 3, dt.datetime(2026, 6, 10, 9, 0, tzinfo=PARIS)),          # the marketing cap reached
    ], ignore_index=True)
    candidates = wave_candidates(campaign, _history(members, day), pd.DataFrame(), day)
    reasons = build_audience(campaign, candidates, members, earlier, day, moment).set_index("member_id").reason
    assert set(reasons[reasons == "daily_cap"].index) == {1, 2, 3}
    assert reasons[4] == INCLUDED and reasons[5] == INCLUDED and reasons[6] == INCLUDED
    marketing = campaigns()[ANNIVERSARY]
    assert marketing.marketing and marketing.policy.frequency_cap == 3 and marketing.policy.daily_cap == 1
    assert not campaign.marketing and campaign.policy.frequency_cap is None


def test_each_lifecycle_message_in_french_and_english_matches_the_published_schema() -> None:
    events = [{"name": "Soirée promo 2006", "date": "2026-11-05", "url": "https://www.eventbrite.fr/e/7001"}]
    for campaign_id, cycle in ((BIRTHDAY, "2026"), (ANNIVERSARY, "2026"), (WELCOME, "2026-w2")):
        campaign = campaigns()[campaign_id]
        for language in ("fr", "en"):
            recipient = {"member_id": 7, "email": "a@example.org", "first_name": "Léa", "language": language,
                         "top_interests": None, "dues_amount_eur": None, "cycle": cycle, "arm": TREATMENT,
                         "graduation_year": 2006, "class_events": json.dumps(events)}
            message = render(campaign, recipient, SENDER)
            assert "Léa" in message.subject and "${" not in message.html + message.subject
            if campaign_id == ANNIVERSARY:
                assert "20" in message.subject and "2006" in message.subject
                assert "Soirée promo 2006" in message.html and "groupes/promo-2006" in message.html
            body = mail_request(campaign, pd.DataFrame([recipient]), SENDER, batch_id="b", send_at=1_800_000_000)
            assert mail_send_errors(body, 1_799_990_000) == []
            assert "lifecycle" in body["categories"]
    welcome = render(campaigns()[WELCOME], {"member_id": 7, "first_name": "Léa", "language": "fr", "cycle": "2026-w1",
                                            "arm": TREATMENT}, SENDER)
    assert "Bienvenue dans le réseau" in welcome.html


def test_class_events_are_the_upcoming_eventbrite_events_of_the_promo() -> None:
    events = pd.DataFrame({"event_id": ["1", "2", "3", "4"],
                           "event_name": ["Afterwork Finance — Paris", "Soirée des 20 ans — promo 2006",
                                          "Dîner Conseil — Lyon", "Gala 2006 (passé)"],
                           "start_at": pd.to_datetime(["2026-11-10 18:00", "2026-12-01 18:00", "2026-11-20 18:00",
                                                       "2026-09-01 18:00"])})  # naive, as the warehouse has them
    registrations = pd.DataFrame({"event_id": ["1", "1", "3", "3", "3", "4"], "promo": [2006, 2006, 2006, 1996,
                                                                                        1996, 2006]})
    found = class_events(events, registrations, dt.date(2026, 10, 1), limit=3)
    assert [e["name"] for e in found[2006]] == ["Soirée des 20 ans — promo 2006", "Afterwork Finance — Paris",
                                                "Dîner Conseil — Lyon"]
    assert [e["name"] for e in found[1996]] == ["Dîner Conseil — Lyon"]
    assert 2016 not in found


def test_lifecycle_results_count_event_sign_ups_and_payments_and_the_reaction_rate() -> None:
    mart = pd.DataFrame({
        "campaign_id": BIRTHDAY, "cycle": "2026", "member_id": [1, 2, 3, 4], "stratum": "targeted",
        "arm": [TREATMENT, TREATMENT, TREATMENT, CONTROL], "status": ["scheduled"] * 3 + ["held_out"],
        "delivered": [True, True, True, False], "opened": [True, True, False, False],
        "clicked": [True, False, False, False], "unsubscribed": False, "spam_reported": False,
        "days_to_dues_paid": [None, 3, None, None], "dues_revenue_eur": [0, 90, 0, 0],
        "days_to_reengaged": [1, 3, None, 2], "days_to_signed_up_or_paid": [1, 3, 45, None]})
    members = outcomes_within_window(mart, {BIRTHDAY: campaigns()[BIRTHDAY].outcome}, 30, ("scheduled",))
    assert members.retained.tolist() == [True, True, False, False]
    results = campaign_results(members, Costs()).set_index("arm")
    assert results.loc[TREATMENT, "retained"] == 2 and results.loc[TREATMENT, "reaction_rate"] == pytest.approx(1 / 3)
    assert np.isnan(results.loc[CONTROL, "reaction_rate"])


def test_a_deployment_may_name_its_own_campaigns_file(tmp_path, monkeypatch) -> None:
    """The demo's copy of campaigns.yaml puts the class anniversary on its simulated morning."""
    from alumni_orchestration.campaigns import definitions

    copy = tmp_path / "campaigns.yaml"
    copy.write_text(definitions.DEFINITIONS_FILE.read_text().replace('"on": "10-01"', '"on": "11-22"'))
    monkeypatch.setenv(definitions.CAMPAIGNS_FILE_ENV, str(copy))
    definitions.campaigns.cache_clear()
    try:
        assert definitions.campaigns()[ANNIVERSARY].lifecycle.on == "11-22"
    finally:
        monkeypatch.delenv(definitions.CAMPAIGNS_FILE_ENV)
        definitions.campaigns.cache_clear()
    assert definitions.campaigns()[ANNIVERSARY].lifecycle.on == "10-01"
