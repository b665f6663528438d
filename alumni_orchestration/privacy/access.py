"""Access (GDPR art. 15): every datum stored about one member, in one JSON file.

Rows are found exactly as an erasure finds them (`subject.row_condition`), in every warehouse table and
every file store, so the export holds all an erasure would remove. Each table's rows go to one section:
profile, activity, scores (with their explanation columns), messages, events, payments, other.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import orjson

from alumni_orchestration.privacy import file_stores
from alumni_orchestration.privacy.erase import UnknownMemberError
from alumni_orchestration.privacy.subject import PRIVACY_SCHEMA, Subject, find_subject
from alumni_orchestration.privacy.warehouse_stores import relations, select_rows
from alumni_orchestration.warehouse import connect
from alumni_orchestration.webhook.landing import Landing

# First keyword found in "<schema>.<table>" names the section.
SECTIONS = (
    ("scores", ("scoring.",)),
    ("messages", ("campaigns.", "sendgrid", "outbox", "email_interactions")),
    ("events", ("eventbrite",)),
    ("payments", ("dues", "helloasso", "payment", "donation")),
    ("activity", ("activity", "engagement", "interest", "vote", "assembl")),
    ("profile", ("members", "member_profile", "group", "volunteer", "identit")),
)


def section_of(qualified: str) -> str:
    for section, keywords in SECTIONS:
        if any(k in qualified for k in keywords):
            return section
    return "other"


def _landing_events(landing_dir: Path, subject: Subject) -> list[dict[str, Any]]:
    landing = Landing(landing_dir)
    found = []
    for day in landing.days():
        for name in landing.list_batches(day):
            try:
                batch = orjson.loads(landing.read_batch(day, name))
            except orjson.JSONDecodeError:
                continue
            if isinstance(batch, list):
                found += [{"day": day, "batch": name, "event": e} for e in batch
                          if file_stores._event_is_subject(e, subject)]
    return found


def _file_mentions(home: Path, subject: Subject) -> dict[str, list[str]]:
    """Lines of exports and logs that mention the member (model artefacts hold no identity but the id)."""
    found: dict[str, list[str]] = {}
    for root, suffixes in ((home / "exports", None), (home, file_stores.LOG_SUFFIXES)):
        for path in file_stores._files(root, suffixes):
            relative = path.relative_to(home)
            if root == home and relative.parts[0] in file_stores.OWN_FOLDERS:
                continue
            if path.suffix in (".parquet", ".joblib"):
                continue
            lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
                     if file_stores.mentions(line, subject)]
            if lines:
                found[str(relative)] = lines
    return found


def collect_member_data(warehouse_path: str | Path, home: Path, landing: Path, member_id: int) -> dict[str, Any]:
    with connect(warehouse_path, read_only=True) as conn:
        subject = find_subject(conn, member_id)
        if subject is None:
            raise UnknownMemberError(f"member {member_id} is not in raw.members")
        sections: dict[str, dict[str, list[dict]]] = {}
        for schema, table in relations(conn):
            if schema == PRIVACY_SCHEMA:
                continue
            qualified = f"{schema}.{table}"
            rows = select_rows(conn, qualified, subject)
            if rows:
                sections.setdefault(section_of(qualified), {})[qualified] = rows
    document: dict[str, Any] = {"member_id": member_id,
                                "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    for section in (*(s for s, _ in SECTIONS[::-1]), "other"):
        document[section] = sections.get(section, {})
    document["webhook_events"] = _landing_events(landing, subject)
    document["files"] = _file_mentions(home, subject)
    document["model_rows"] = file_stores.model_rows(home / "models", subject)
    return document


def default_export_path(home: Path, member_id: int) -> Path:
    return home / "exports" / "privacy" / f"access-member-{member_id}.json"


def export_member(warehouse_path: str | Path, home: Path, landing: Path, member_id: int,
                  out: Path | None = None) -> Path:
    """Write the member's data to `out` (default under $ALUMNI_HOME/exports/privacy/); returns the path."""
    document = collect_member_data(warehouse_path, home, landing, member_id)
    out = out or default_export_path(home, member_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    file_stores.write_atomically(out, json.dumps(document, ensure_ascii=False, indent=1, default=str).encode("utf-8"))
    return out
