"""Messages: the bundled French and English templates, and SendGrid mail-send requests.

Bundled templates are rendered here, one message per member, and travel as per-personalization
subject and substitutions; with a SendGrid dynamic template ("d-..."), the same personal data
travels as `dynamic_template_data` instead. Either way every request carries the unsubscribe
group (one-click unsubscribe), the campaign's categories and custom args for attribution.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

import pandas as pd
import yaml

from alumni_orchestration.campaigns.definitions import Campaign
from alumni_orchestration.campaigns.lifecycle import events_html, lifecycle_fields

TEMPLATE_DIR = Path(__file__).with_name("templates")
SITE = "https://www.anciens-exemple.fr"
HTML_TAG, TEXT_TAG = "-message_html-", "-message_text-"
# Members abroad get the English variant, unless they live where French is spoken.
FRENCH_SPEAKING_ABROAD = {"Genève", "Bruxelles", "Montréal"}
MAX_PERSONALIZATIONS = 1000
RECIPIENT_COLUMNS = ("member_id", "email", "first_name", "language", "top_interests", "dues_amount_eur", "cycle", "arm")


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class Sender:
    from_email: str
    from_name: str
    reply_to: str = ""
    organization: str = ""


def language_for(city: str | None, region: str | None) -> str:
    return "en" if region == "International" and city not in FRENCH_SPEAKING_ABROAD else "fr"


@cache
def _template(name: str, language: str) -> tuple[Template, Template]:
    subject_line, body = (TEMPLATE_DIR / f"{name}.{language}.html").read_text(encoding="utf-8").split("\n", 1)
    if not subject_line.startswith("Subject: "):
        raise ValueError(f"template {name}.{language} must start with a 'Subject: ' line")
    return Template(subject_line.removeprefix("Subject: ")), Template(body)


@cache
def _blocks() -> dict[str, dict[str, str]]:
    return yaml.safe_load((TEMPLATE_DIR / "blocks.yaml").read_text(encoding="utf-8"))


def interest_topics(top_interests: str | None, limit: int = 3) -> list[str]:
    """The member's top topics, from member_scores.top_interests (JSON [{topic, affinity}])."""
    if not top_interests:
        return []
    blocks = _blocks()
    return [item["topic"] for item in json.loads(top_interests) if item["topic"] in blocks][:limit]


def content_blocks(topics: list[str], language: str, campaign_id: str) -> list[dict[str, str]]:
    blocks = _blocks()
    chosen = topics or ["carriere"]  # no known interest: the network's most asked-for service
    return [{"topic": t, "text": blocks[t][language],
             "url": f"{SITE}/articles/{t}/{campaign_id}?utm_campaign={campaign_id}"} for t in chosen]


def _euros(amount: float | None, language: str) -> str:
    if amount is None or pd.isna(amount):
        return ""
    return f"{amount:.0f} €" if language == "fr" else f"€{amount:.0f}"


def personal_data(campaign: Campaign, recipient: dict[str, Any], sender: Sender) -> dict[str, Any]:
    """What a message says to one member: first name, interest blocks, and for dues the amount and link."""
    language = recipient.get("language") or "fr"
    dues_year = str(recipient.get("cycle") or "")[:4]
    return {
        "first_name": recipient.get("first_name") or ("Bonjour" if language == "fr" else "Hello"),
        "language": language,
        "blocks": content_blocks(interest_topics(recipient.get("top_interests")), language, campaign.campaign_id),
        "dues_year": dues_year,
        "amount": _euros(recipient.get("dues_amount_eur"), language),
        "payment_link": campaign.payment_link.format(organization=sender.organization, cycle=dues_year)
        if campaign.payment_link else "",
        **lifecycle_fields(campaign, recipient, language),
    }


def render(campaign: Campaign, recipient: dict[str, Any], sender: Sender) -> Rendered:
    data = personal_data(campaign, recipient, sender)
    subject_t, body_t = _template(campaign.content.template, data["language"])
    escaped = {k: html.escape(str(v)) for k, v in data.items() if k not in ("blocks", "events")}
    blocks_html = "<ul>" + "".join(f'<li><a href="{html.escape(b["url"])}">{html.escape(b["text"])}</a></li>'
                                   for b in data["blocks"]) + "</ul>"
    events = events_html(data["events"], data["language"]) if "events" in data else ""
    body = body_t.substitute({**escaped, "blocks": blocks_html, "events": events})
    subject = subject_t.substitute({k: str(v) for k, v in data.items() if k not in ("blocks", "events")})
    return Rendered(subject=subject, html=body, text=html_to_text(body))


def html_to_text(body: str) -> str:
    text = re.sub(r'<a href="([^"]*)">([^<]*)</a>', r"\2 (\1)", body)
    text = re.sub(r"<li>", "- ", text)
    text = re.sub(r"<br>|</p>|</li>", "\n", text)
    return html.unescape(re.sub(r"<(?!%)[^>]+>", "", text)).strip() + "\n"  # keep SendGrid tags: <%...%>


def custom_args(campaign: Campaign, recipient: dict[str, Any]) -> dict[str, str]:
    return {"member_id": str(int(recipient["member_id"])), "campaign_id": campaign.campaign_id,
            "cycle": str(recipient["cycle"]), "arm": str(recipient["arm"])}


def mail_request(campaign: Campaign, recipients: pd.DataFrame, sender: Sender, *, batch_id: str | None = None,
                 send_at: int | None = None) -> dict[str, Any]:
    """One POST /v3/mail/send body for at most 1,000 recipients, one personalization each."""
    if not 0 < len(recipients) <= MAX_PERSONALIZATIONS:
        raise ValueError(f"a request holds 1 to {MAX_PERSONALIZATIONS} personalizations, not {len(recipients)}")
    dynamic = campaign.content.sendgrid_template_id
    personalizations = []
    for recipient in recipients.to_dict("records"):
        p: dict[str, Any] = {"to": [{"email": recipient["email"]}], "custom_args": custom_args(campaign, recipient)}
        if dynamic:
            p["dynamic_template_data"] = personal_data(campaign, recipient, sender)
        else:
            message = render(campaign, recipient, sender)
            p["subject"] = message.subject
            p["substitutions"] = {HTML_TAG: message.html, TEXT_TAG: message.text}
        personalizations.append(p)
    body: dict[str, Any] = {
        "personalizations": personalizations,
        "from": {"email": sender.from_email, "name": sender.from_name},
        "categories": list(dict.fromkeys([*campaign.categories, campaign.campaign_id]))[:10],
        "asm": {"group_id": campaign.unsubscribe_group_id, "groups_to_display": [campaign.unsubscribe_group_id]},
        "tracking_settings": {"click_tracking": {"enable": True}, "open_tracking": {"enable": True}},
    }
    if dynamic:
        body["template_id"] = dynamic
    else:
        body["subject"] = campaign.title  # each personalization's own subject overrides it
        body["content"] = [{"type": "text/plain", "value": TEXT_TAG}, {"type": "text/html", "value": HTML_TAG}]
    if sender.reply_to:
        body["reply_to"] = {"email": sender.reply_to}
    if batch_id:
        body["batch_id"] = batch_id
    if send_at is not None:
        body["send_at"] = int(send_at)
    return body
