"""The campaign definitions of campaigns.yaml, loaded and checked once.

A campaign's *period* is its experiment unit (a quarter, a dues year): arms are drawn per period,
so a member keeps their arm across the reminders of one dues year. Its *cycle* is the ledger key:
one message per member and cycle. A kind with numbered steps (a reminder sequence) has one cycle per
step ("2026-r1", "2026-r2", ...); otherwise a campaign's cycle is its period. Its *kind* (kinds.py) says
how candidates are selected; its *outcome* which column of the campaign_member_outcomes mart measures it;
its *targeting* which policy picks among the eligible, and the exploration arm's share.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from alumni_orchestration.campaigns.audience import AudiencePolicy
from alumni_orchestration.campaigns.kinds import OUTCOMES, Kind, kind_named
from alumni_orchestration.campaigns.lifecycle import Lifecycle, lifecycle_from
from alumni_orchestration.campaigns.policies import Targeting
from alumni_orchestration.campaigns.triggers import Trigger

DEFINITIONS_FILE = Path(__file__).with_name("campaigns.yaml")
CAMPAIGNS_FILE_ENV = "ALUMNI_CAMPAIGNS_FILE"
PERIODS = ("quarter", "dues_year", "year")


@dataclass(frozen=True)
class Content:
    template: str
    sendgrid_template_id: str | None = None

    def __post_init__(self) -> None:
        if self.sendgrid_template_id and not self.sendgrid_template_id.startswith("d-"):
            raise ValueError(f"a dynamic template id starts with 'd-', not {self.sendgrid_template_id!r}")


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    title: str
    description: str
    period: str
    triggers: tuple[Trigger, ...]
    policy: AudiencePolicy
    holdout_share: float
    unsubscribe_group_id: int
    categories: tuple[str, ...]
    content: Content
    kind: Kind
    outcome: str
    targeting: Targeting = field(default_factory=Targeting)
    marketing: bool = True
    payment_link: str = ""
    value_per_conversion_eur: float = 0.0
    season_opens: str = "01-01"  # month-day from which the campaign may fire in its period's year
    dues_amounts_eur: dict = field(default_factory=dict)
    lifecycle: Lifecycle | None = None  # kind lifecycle: the occasion and its settings (lifecycle.py)

    @property
    def is_sequence(self) -> bool:
        """Kept for the benchmark's note on seasons; the campaign code asks `kind` instead."""
        return self.kind.numbered_steps

    def period_of(self, as_of: dt.date) -> str:
        if self.period in ("dues_year", "year"):
            return str(as_of.year)
        return f"{as_of.year}-Q{(as_of.month - 1) // 3 + 1}"

    def cycle_of(self, as_of: dt.date, step: int = 1) -> str:
        """The ledger cycle of a message: the period, with the reminder's step for a sequence."""
        period = self.period_of(as_of)
        return f"{period}-r{step}" if self.kind.numbered_steps else period

    def not_before(self, as_of: dt.date) -> dt.datetime | None:
        """The earliest moment the wave of `as_of` may send at (a greeting's 08:00), quiet hours aside."""
        return self.lifecycle.not_before(as_of) if self.lifecycle else None

    def season_opens_on(self, as_of: dt.date) -> dt.date:
        month, day = (int(x) for x in self.season_opens.split("-"))
        return dt.date(as_of.year, month, day)


def _campaign(campaign_id: str, spec: dict, defaults: dict) -> Campaign:
    merged = {**defaults, **spec}
    if merged.get("cycle") not in PERIODS:
        raise ValueError(f"campaign {campaign_id}: cycle must be one of {PERIODS}")
    if not 0 <= float(merged["holdout_share"]) < 1:
        raise ValueError(f"campaign {campaign_id}: holdout_share must be in [0, 1)")
    triggers = tuple(Trigger(score=t["score"], direction=t["direction"], threshold=float(t["threshold"]),
                             margin=float(t.get("margin", 0))) for t in merged.get("triggers") or [])
    kind = kind_named(str(merged.get("kind")))
    if not triggers and not kind.date_triggered:
        raise ValueError(f"campaign {campaign_id}: at least one trigger")
    categories = tuple(merged.get("categories") or [campaign_id])
    if len(categories) > 9:  # SendGrid allows 10 categories; one is kept for the campaign id
        raise ValueError(f"campaign {campaign_id}: at most 9 categories")
    if merged.get("outcome") not in OUTCOMES:
        raise ValueError(f"campaign {campaign_id}: outcome must be one of {OUTCOMES}")
    targeting = dict(merged.get("targeting") or {})
    targeting.setdefault("value_per_conversion_eur", _value_per_conversion(merged))
    policy = AudiencePolicy(
        frequency_cap=None if merged["frequency_cap"] is None else int(merged["frequency_cap"]),
        frequency_window_days=int(merged["frequency_window_days"]),
        daily_cap=None if merged.get("daily_cap") is None else int(merged["daily_cap"]),
        cooldown_days=int(merged.get("cooldown_days", 30)), max_reminders=merged.get("max_reminders"),
        min_days_between_reminders=merged.get("min_days_between_reminders"),
        requires_unpaid=bool(merged.get("requires_unpaid", False)))
    return Campaign(
        campaign_id=campaign_id, title=merged.get("title", campaign_id), description=merged.get("description", ""),
        period=merged["cycle"], triggers=triggers, policy=policy, holdout_share=float(merged["holdout_share"]),
        unsubscribe_group_id=int(merged["unsubscribe_group_id"]), categories=categories,
        content=Content(**merged["content"]), kind=kind, outcome=merged["outcome"],
        targeting=Targeting(**targeting), marketing=bool(merged.get("marketing", True)),
        payment_link=merged.get("payment_link", ""),
        value_per_conversion_eur=float(merged.get("value_per_conversion_eur", 0.0)),
        season_opens=str(merged.get("season_opens", "01-01")),
        dues_amounts_eur={k: float(v) for k, v in (merged.get("dues_amounts_eur") or {}).items()},
        lifecycle=_lifecycle(campaign_id, merged, kind))


def _lifecycle(campaign_id: str, spec: dict, kind: Kind) -> Lifecycle | None:
    if kind.date_triggered and not spec.get("lifecycle"):
        raise ValueError(f"campaign {campaign_id}: kind {kind.name} needs a `lifecycle:` block")
    return lifecycle_from(spec.get("lifecycle"))


def _value_per_conversion(spec: dict) -> float:
    """What one conversion is worth: the campaign's value, else the standard annual dues."""
    if spec.get("value_per_conversion_eur"):
        return float(spec["value_per_conversion_eur"])
    return float((spec.get("dues_amounts_eur") or {}).get("annual", 0.0))


def load_campaigns(path: Path = DEFINITIONS_FILE) -> dict[str, Campaign]:
    raw = yaml.safe_load(path.read_text())
    defaults = raw.get("defaults", {})
    return {cid: _campaign(cid, spec, defaults) for cid, spec in raw["campaigns"].items()}


@cache
def campaigns() -> dict[str, Campaign]:
    """The deployment's campaigns: campaigns.yaml, or the file ALUMNI_CAMPAIGNS_FILE names (the demo's copy, whose
    class anniversary falls on its simulated morning)."""
    return load_campaigns(Path(os.environ.get(CAMPAIGNS_FILE_ENV) or DEFINITIONS_FILE))
