"""Pure wave logic: reminder sequences, audience reasons with the holdout, and message building."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from alumni_orchestration.campaigns.content import Sender, language_for, mail_request, render
from alumni_orchestration.campaigns.definitions import campaigns
from alumni_orchestration.campaigns.send_window import PARIS
from alumni_orchestration.campaigns.waves import build_audience, wave_candidates
from alumni_orchestration.contracts import mail_send_errors

DUES = campaigns()["dues_reminder"]
SENDER = Sender(from_email="contact@example.org", from_name="Association", organization="asso")


def _history(rows: dict[int, tuple[float, bool]], as_of: dt.date) -> pd.DataFrame:
    """The same scores on the wave's day and the day before: member -> (propensity, paid)."""
    frames = [pd.DataFrame({"member_id": list(rows), "as_of": day, "engagement_score": 50.0,
                            "dues_propensity": [p for p, _ in rows.values()],
                            "paid_current_cycle": [paid for _, paid in rows.values()]})
              for day in (as_of - dt.timedelta(days=1), as_of)]
    return pd.concat(frames, ignore_index=True)


def _ledger(rows: list[tuple[int, int, str]]) -> pd.DataFrame:
    """(member, step, as_of) of earlier reminders this dues year."""
    return pd.DataFrame([{"member_id": m, "step": s, "as_of": pd.Timestamp(d), "period": "2026", "cycle": f"2026-r{s}"}
                         for m, s, d in rows])


def test_reminder_sequence_three_at_most_fourteen_days_apart_stopping_on_payment() -> None:
    as_of = dt.date(2026, 6, 15)
    history = _history({1: (0.8, False), 2: (0.8, False), 3: (0.8, False), 4: (0.8, True), 5: (0.3, False),
                        6: (0.47, False), 7: (0.47, False), 8: (0.8, False)}, as_of)
    ledger = _ledger([(2, 1, "2026-06-01"),                                      # 14 days ago: due for step 2
                      (3, 1, "2026-05-01"), (3, 2, "2026-06-05"),                # 10 days ago: too soon
                      (4, 1, "2026-05-01"),                                      # has paid since: stops
                      (6, 1, "2026-05-20"),                                      # below threshold, above margin
                      (8, 1, "2026-04-01"), (8, 2, "2026-04-20"), (8, 3, "2026-05-10")])  # three already
    found = wave_candidates(DUES, history, ledger, as_of).set_index("member_id")
    assert found.step.to_dict() == {1: 1, 2: 2, 6: 2}  # 7 never started: 0.47 is below the threshold
    assert found.cycle.to_dict() == {1: "2026-r1", 2: "2026-r2", 6: "2026-r2"}
    assert wave_candidates(DUES, history, ledger, dt.date(2026, 2, 10)).empty  # before the season opens


def test_audience_gives_one_reason_each_and_a_stable_holdout() -> None:
    as_of = dt.date(2026, 6, 15)
    moment = dt.datetime.combine(as_of, dt.time(0), PARIS)
    ids = list(range(1, 2001))
    candidates = pd.DataFrame({"member_id": ids, "step": 1, "cycle": "2026-r1", "period": "2026", "trigger": "t",
                               "score": 0.9})
    members = pd.DataFrame({"member_id": ids, "status": "active", "consent_email": True, "email_valid": True,
                            "suppressed": False, "paid_current_cycle": False})
    members.loc[members.member_id == 1, "status"] = "deceased"
    members.loc[members.member_id == 2, "consent_email"] = False
    members.loc[members.member_id == 3, "email_valid"] = False
    members.loc[members.member_id == 4, "suppressed"] = True
    members.loc[members.member_id == 5, "paid_current_cycle"] = True
    recent = [{"member_id": 6, "campaign_id": "newsletter-2026-06", "cycle": "", "period": "",
               "sent_at": pd.Timestamp(moment) - pd.Timedelta(days=d), "marketing": True} for d in (1, 5, 9)]
    old = [{"member_id": 7, "campaign_id": "newsletter-2026-04", "cycle": "", "period": "",
            "sent_at": pd.Timestamp(moment) - pd.Timedelta(days=d), "marketing": True} for d in (40, 50, 60)]
    control = [{"member_id": 8, "campaign_id": "dues_reminder", "cycle": "2026-r1", "period": "2026",
                "sent_at": pd.Timestamp(moment) - pd.Timedelta(days=20), "marketing": False}]
    sends = pd.DataFrame(recent + old + control)
    audience = build_audience(DUES, candidates, members, sends, as_of, moment).set_index("member_id")
    assert audience.reason[:8].to_dict() == {1: "left_or_deceased", 2: "no_consent", 3: "no_valid_email",
                                             4: "suppressed", 5: "already_paid", 6: "frequency_cap",
                                             7: "included", 8: "already_contacted_this_cycle"}
    included = audience[audience.reason == "included"]
    assert audience.arm[audience.reason != "included"].isna().all()
    assert 0.08 < (included.arm == "control").mean() < 0.12
    again = build_audience(DUES, candidates, members, sends, as_of, moment).set_index("member_id")
    assert again.arm.equals(audience.arm)


def _recipients(n: int, **extra) -> pd.DataFrame:
    return pd.DataFrame({"member_id": range(1, n + 1), "email": [f"m{i}@example.org" for i in range(1, n + 1)],
                         "first_name": "Éloïse", "language": "fr", "dues_amount_eur": 90.0, "cycle": "2026-r1",
                         "arm": "treatment", "top_interests": json.dumps([{"topic": "sport", "affinity": 0.5},
                                                                           {"topic": "finance", "affinity": 0.3}]),
                         **extra})


def test_requests_hold_at_most_1000_personalizations_and_match_the_published_schema() -> None:
    now = dt.datetime(2026, 6, 15, 10, tzinfo=dt.UTC)
    body = mail_request(DUES, _recipients(1000), SENDER, batch_id="b1", send_at=int(now.timestamp()) + 600)
    assert mail_send_errors(body, now.timestamp()) == []
    first = body["personalizations"][0]
    assert first["custom_args"] == {"member_id": "1", "campaign_id": "dues_reminder", "cycle": "2026-r1",
                                    "arm": "treatment"}
    assert body["asm"]["group_id"] == DUES.unsubscribe_group_id and body["batch_id"] == "b1"
    assert "Éloïse" in first["subject"] and "90 €" in first["substitutions"]["-message_text-"]
    assert "asm_group_unsubscribe_raw_url" in first["substitutions"]["-message_html-"]
    assert "/articles/sport/" in first["substitutions"]["-message_html-"]
    with pytest.raises(ValueError):
        mail_request(DUES, _recipients(1001), SENDER)
    dynamic = campaigns()["reengagement"].__class__(**{**campaigns()["reengagement"].__dict__,
                                                      "content": type(DUES.content)("reengagement", "d-abc123")})
    body = mail_request(dynamic, _recipients(3), SENDER)
    assert body["template_id"] == "d-abc123" and "content" not in body
    assert body["personalizations"][0]["dynamic_template_data"]["blocks"][0]["topic"] == "sport"
    assert mail_send_errors(body, now.timestamp()) == []


def test_english_variant_for_members_abroad_outside_french_speaking_cities() -> None:
    assert language_for("Londres", "International") == "en"
    assert language_for("Genève", "International") == "fr" and language_for("Lyon", "Auvergne-Rhône-Alpes") == "fr"
    english = render(DUES, _recipients(1, language="en").iloc[0].to_dict(), SENDER)
    assert "membership dues" in english.subject and "€90" in english.text


def test_results_uplift_ci_and_roi_from_member_outcomes() -> None:
    from alumni_orchestration.campaigns.results import Costs, campaign_results, two_proportion_uplift

    # Newcombe (1998), Statistics in Medicine 17:873, table II, method 10: his worked examples.
    for (x_t, n_t, x_c, n_c), (low_ref, high_ref) in {(56, 70, 48, 80): (0.0524, 0.3339), (9, 10, 3, 10): (0.1705, 0.8090),
                                                     (5, 56, 0, 29): (-0.0381, 0.1926), (0, 10, 0, 20): (-0.1611, 0.2775)}.items():
        uplift, low, high = two_proportion_uplift(x_t, n_t, x_c, n_c)
        assert uplift == pytest.approx(x_t / n_t - x_c / n_c)
        assert (low, high) == (pytest.approx(low_ref, abs=1e-4), pytest.approx(high_ref, abs=1e-4))
    members = pd.DataFrame({
        "campaign_id": "dues_reminder", "cycle": "2026-r1", "member_id": range(300),
        "arm": ["treatment"] * 200 + ["control"] * 100,
        "sent": [True] * 200 + [False] * 100, "delivered": [True] * 190 + [False] * 110,
        "opened": [True] * 80 + [False] * 220, "clicked": [True] * 20 + [False] * 280,
        "unsubscribed": [True] * 2 + [False] * 298, "spam_reported": False,
        "retained": [True] * 60 + [False] * 140 + [True] * 10 + [False] * 90,
        "revenue_eur": [90.0] * 60 + [0.0] * 140 + [90.0] * 10 + [0.0] * 90})
    results = campaign_results(members, Costs(per_email_eur=0.01, acquire_member_eur=9.0)).set_index("arm")
    t, c = results.loc["treatment"], results.loc["control"]
    assert (t.audience, t.sent, t.delivered, t.unique_opens, t.clicks, t.unsubscribes) == (200, 200, 190, 80, 20, 2)
    assert (c.audience, c.sent, c.retained) == (100, 0, 10) and pd.isna(c.uplift)
    assert t.uplift == pytest.approx(0.3 - 0.1) and t.uplift_ci_low < 0.2 < t.uplift_ci_high
    assert t.incremental_retained == pytest.approx(40) and t.cost_eur == pytest.approx(2.0)
    assert t.cost_per_incremental_retained_eur == pytest.approx(2.0 / 40)
    assert t.roi == pytest.approx((40 * 9.0 - 2.0) / 2.0) and t.revenue_eur == 60 * 90.0


def test_uplift_interval_covers_the_simulated_worlds_true_reminder_uplift() -> None:
    """Calibration against the sandbox's own world: dues reminders to a generated audience, split by the
    campaigns' holdout, with the recipients' payments drawn by `world.reactions` (common random numbers
    with the generator). Over many waves the 95% interval must cover the true uplift about 95% of the time."""
    import numpy as np

    from alumni_orchestration.campaigns.holdout import assign_arms
    from alumni_orchestration.campaigns.results import two_proportion_uplift
    from alumni_orchestration.sandbox.world import Recipient, reactions, reminder_effect
    from alumni_orchestration.synthetic.behaviour import dues_reminder_uplift, hash_uniform

    seed, year, size = 11, 2026, 800
    rng = np.random.default_rng(seed)
    ids = np.arange(1, size + 1)
    p_pay, responsiveness = rng.uniform(0.05, 0.7, size), rng.uniform(0, 1, size)
    uplift, bounce = dues_reminder_uplift(responsiveness, p_pay), rng.uniform(0, 0.05, size)
    recipients = {int(i): Recipient(int(i), f"m{i}@example.org", "", "", "", False, 0.3, 0.05, 0.0, float(b), 0.0,
                                    float(g), 90.0, "annual", ()) for i, b, g in zip(ids, bounce, uplift, strict=True)}
    dues_truth = {(int(i), year): (float(p), 0) for i, p in zip(ids, p_pay, strict=True)}
    # The audience: members who have not paid yet (u >= p), as when reminders go out late in the season.
    unpaid = ids[hash_uniform(seed, ids.astype(np.uint64), year) >= p_pay]
    truth = float(reminder_effect(p_pay[unpaid - 1], hash_uniform(seed, unpaid.astype(np.uint64), year),
                                  uplift[unpaid - 1], bounce[unpaid - 1]).mean())
    assert 0.02 < truth < 0.2  # a real effect to find

    covered, detected, estimates = 0, 0, []
    waves = 200
    for wave in range(waves):
        cycle = f"{year}-r{wave}"  # a new cycle key draws a new holdout split
        arms = assign_arms(pd.Series(unpaid), "dues_reminder", cycle, 0.5)
        treated = unpaid[(arms == "treatment").to_numpy()]
        paid = sum(reactions(seed, {"sg_message_id": f"w{wave}-{m}", "sent_at": 1_780_000_000, "email": f"m{m}@example.org",
                                    "categories": ["dues_reminder"], "custom_args": {"cycle": cycle}},
                             recipients[int(m)], dues_truth)[1] is not None for m in treated)
        # Held out: no reminder, and the simulated world adds no payment without one.
        estimate, low, high = two_proportion_uplift(paid, len(treated), 0, len(unpaid) - len(treated))
        covered += low <= truth <= high
        detected += low > 0
        estimates.append(estimate)
    assert abs(np.mean(estimates) - truth) < 0.01  # unbiased
    assert covered / waves >= 0.9, f"the 95% interval covered the truth in {covered} of {waves} waves"
    assert detected / waves >= 0.8  # ... and is narrow enough to tell the effect from none
