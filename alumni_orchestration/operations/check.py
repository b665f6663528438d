"""`alumni check`: a read-only health check of every configured connection.

Each check is a small function returning verdict rows (what was checked, ok / warn / FAIL, what was
found, and the fix for a failure). Nothing is written anywhere: the membership source is read and
validated into an in-memory DuckDB with the nightly load's own rules. No secret is ever shown: messages
are built from status codes and the providers' error text, and the report is redacted of every
configured secret as a last guard.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import requests
import sqlalchemy as sa
from tabulate import tabulate

from alumni_orchestration import settings
from alumni_orchestration.contracts.membership import CONTRACT
from alumni_orchestration.ingest.http import ProviderError, RetryBudget, request_json
from alumni_orchestration.ingest.membership import load_membership_snapshot
from alumni_orchestration.mapping import (
    MAPPING_ENV,
    MappingSpecError,
    MembershipMapping,
    load_mapping,
    mapping_reader,
)
from alumni_orchestration.warehouse import ensure_raw_schema

OK, WARN, FAIL = "ok", "warn", "FAIL"
QUARANTINE_WARN_RATE = 0.05  # above this share of a table's rows in quarantine, look at the source
CHECK_BUDGET = RetryBudget(max_attempts=2, max_total_seconds=15.0, base_delay=0.5, timeout=10.0)

# The SendGrid scopes each use of the key needs (names from SendGrid's API key permissions list).
SENDGRID_SCOPES = {
    "campaign sends": ("mail.send", "mail.batch.create", "user.scheduled_sends.create",
                       "user.scheduled_sends.read", "user.scheduled_sends.update"),
    "suppression sync": ("suppression.bounces.read", "suppression.blocks.read", "suppression.spam_reports.read",
                         "suppression.unsubscribes.read", "suppression.invalid_emails.read",
                         "asm.groups.suppressions.read"),
}


@dataclass(frozen=True)
class Verdict:
    check: str
    verdict: str
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Connections:
    """What the platform is configured to talk to, read from the environment as defs/resources.py does."""

    membership_url: str
    sendgrid_host: str
    sendgrid_api_key: str
    webhook_public_key: str
    eventbrite_base_url: str
    eventbrite_token: str
    eventbrite_organization_id: str
    helloasso_api_url: str
    helloasso_token_url: str
    helloasso_client_id: str
    helloasso_client_secret: str
    helloasso_organization_slug: str
    secrets: tuple[str, ...] = field(default=(), repr=False)
    membership_mapping: str = ""  # ALUMNI_MEMBERSHIP_MAPPING: the source is read through this mapping

    @classmethod
    def from_environment(cls) -> Connections:
        env = os.environ
        membership_url = env.get("MEMBERSHIP_DATABASE_URL") or settings.default_membership_url()
        secret_values = [env.get(name, "") for name in (
            "MEMBERSHIP_DATABASE_URL", "SENDGRID_API_KEY", "EVENTBRITE_TOKEN", "HELLOASSO_CLIENT_SECRET")]
        return cls(
            membership_url=membership_url,
            sendgrid_host=settings.sendgrid_host(),
            sendgrid_api_key=env.get("SENDGRID_API_KEY", ""),
            webhook_public_key=env.get("SENDGRID_WEBHOOK_PUBLIC_KEY", ""),
            eventbrite_base_url=settings.eventbrite_base_url(),
            eventbrite_token=env.get("EVENTBRITE_TOKEN", ""),
            eventbrite_organization_id=settings.eventbrite_organization_id(),
            helloasso_api_url=settings.helloasso_api_url(),
            helloasso_token_url=settings.helloasso_token_url(),
            helloasso_client_id=env.get("HELLOASSO_CLIENT_ID", ""),
            helloasso_client_secret=env.get("HELLOASSO_CLIENT_SECRET", ""),
            helloasso_organization_slug=settings.helloasso_organization_slug(),
            secrets=tuple(s for s in [*secret_values, _url_password(membership_url)] if s),
            membership_mapping=env.get(MAPPING_ENV, "").strip(),
        )


def _url_password(url: str) -> str:
    try:
        return sa.engine.make_url(url).password or ""
    except sa.exc.ArgumentError:
        return ""


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0][:160]}" if text else type(cause).__name__


# ---- the membership source ----
def check_membership(url: str, mapping_path: str = "") -> list[Verdict]:
    name = "membership source"
    mapping = None
    if mapping_path:
        try:
            mapping = load_mapping(mapping_path)
        except (OSError, MappingSpecError) as exc:
            errors = getattr(exc, "errors", None) or [_first_line(exc)]
            return [Verdict(name, FAIL, f"the mapping {Path(mapping_path).name} is not valid: {'; '.join(errors[:3])}"
                            + (" ..." if len(errors) > 3 else ""),
                            f"correct the mapping named by {MAPPING_ENV} (README: Your association's data)")]
        if not mapping.reads_database:
            return _load_verdicts(None, f"the files of the mapping {mapping.path.name}", mapping)
    fix_url = "set MEMBERSHIP_DATABASE_URL to the SQLAlchemy URL of the membership database"
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return [Verdict(name, FAIL, "MEMBERSHIP_DATABASE_URL is not a SQLAlchemy URL", fix_url)]
    shown = f"{parsed.get_backend_name()} database {Path(parsed.database or '').name or '?'}"
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).is_file():
        # SQLite would create an empty file: a check never writes.
        return [Verdict(name, FAIL, f"{shown}: no such file", fix_url)]
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        return [Verdict(name, FAIL, f"{shown}: {_first_line(exc)}", fix_url + " (and install its driver)")]
    try:
        return _membership_verdicts(engine, shown, mapping)
    finally:
        engine.dispose()


def _membership_verdicts(engine: sa.Engine, shown: str, mapping: MembershipMapping | None = None) -> list[Verdict]:
    name = "membership source"
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            present = {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}
    except sa.exc.SQLAlchemyError as exc:
        return [Verdict(name, FAIL, f"{shown} unreachable: {_first_line(exc)}",
                        "check the host, port, database name and credentials in MEMBERSHIP_DATABASE_URL, "
                        "and that the database accepts connections from this machine")]
    gaps = [f"{t.name} (table)" if t.name not in present else
            f"{t.name}.{c.name}" for t in CONTRACT for c in t.columns
            if t.name not in present or c.name not in present[t.name]]
    gaps = list(dict.fromkeys(gaps))
    if mapping is not None:  # the mapping says which tables are read, and the load names a missing column
        shown, gaps = f"{shown} through the mapping {mapping.path.name}", []
    if gaps:
        return [Verdict(name, FAIL, f"{shown}: missing {', '.join(gaps[:8])}{' ...' if len(gaps) > 8 else ''}",
                        "the source must hold the canonical membership tables (contracts/membership.py)")]
    return _load_verdicts(engine, shown, mapping)


def _load_verdicts(engine: sa.Engine | None, shown: str, mapping: MembershipMapping | None) -> list[Verdict]:
    name = "membership source"
    conn = duckdb.connect(":memory:")
    try:
        ensure_raw_schema(conn)
        loads = load_membership_snapshot(conn, engine, read=mapping_reader(mapping, engine) if mapping else None)
    except Exception as exc:  # noqa: BLE001 - any failure of the load is the verdict
        return [Verdict(name, FAIL, f"{shown}: the load failed: {_first_line(exc)}",
                        "run `alumni check` again after fixing the source; the nightly load would fail the same way")]
    finally:
        conn.close()
    rows = [Verdict(name, OK, f"{shown} reachable, {len(loads)} tables read and validated")]
    for load in loads:
        rate = load.rows_quarantined / load.rows_read if load.rows_read else 0.0
        reasons = ", ".join(f"{reason} {n}" for reason, n in load.quarantined_by_reason.items() if
                            not reason.startswith("field:"))
        detail = f"{load.rows_read} rows, {load.rows_quarantined} quarantined ({rate:.1%})" + (
            f": {reasons}" if reasons else "") + (
            f"; {load.fields_quarantined} fields rejected" if load.fields_quarantined else "")
        high = rate > QUARANTINE_WARN_RATE
        rows.append(Verdict(f"membership.{load.table}", WARN if high else OK, detail,
                            "correct these rows at the source (reasons in raw.quarantine after a load)" if high else ""))
    return rows


# ---- SendGrid ----
def _get(url: str, token: str, provider: str) -> object:
    return request_json(requests.Session(), provider, "GET", url, budget=CHECK_BUDGET,
                        headers={"Authorization": f"Bearer {token}"})


def _call_failed(name: str, exc: Exception, refused_fix: str, other_fix: str) -> Verdict:
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return Verdict(name, FAIL, f"refused (HTTP {status})", refused_fix)
    if isinstance(exc, ProviderError) and status is not None:
        return Verdict(name, FAIL, str(exc), other_fix)
    return Verdict(name, FAIL, f"unreachable: {exc}", other_fix)


def check_sendgrid(host: str, api_key: str) -> list[Verdict]:
    name = "SendGrid API key"
    fix_key = "create an API key (Settings → API Keys) and set SENDGRID_API_KEY"
    if not api_key:
        return [Verdict(name, FAIL, "SENDGRID_API_KEY is not set", fix_key)]
    try:
        body = _get(f"{host.rstrip('/')}/v3/scopes", api_key, "sendgrid")
    except ProviderError as exc:
        return [_call_failed(name, exc, fix_key, "check SENDGRID_HOST (https://api.sendgrid.com)")]
    granted = set(body.get("scopes") or []) if isinstance(body, dict) else set()
    rows = [Verdict(name, OK, f"key accepted, {len(granted)} scopes")]
    for use, needed in SENDGRID_SCOPES.items():
        missing = [scope for scope in needed if scope not in granted]
        rows.append(Verdict(f"SendGrid scopes: {use}", FAIL if missing else OK,
                            f"missing {', '.join(missing)}" if missing else f"all {len(needed)} present",
                            "give the key these permissions (Settings → API Keys → Edit API Key)" if missing else ""))
    return rows


def check_webhook_public_key(public_key: str) -> list[Verdict]:
    from cryptography.hazmat.primitives.asymmetric import ec
    from sendgrid import EventWebhook

    name = "SendGrid webhook public key"
    fix = ("copy the verification key from Settings → Mail Settings → Signed Event Webhook "
           "into SENDGRID_WEBHOOK_PUBLIC_KEY (the base64 text, without the PEM lines)")
    if not public_key:
        return [Verdict(name, WARN, "SENDGRID_WEBHOOK_PUBLIC_KEY is not set: the receiver cannot verify batches", fix)]
    try:
        key = EventWebhook(public_key.strip()).public_key
    except (ValueError, TypeError):
        return [Verdict(name, FAIL, "does not parse as a public key", fix)]
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        return [Verdict(name, FAIL, "not an ECDSA P-256 key, which SendGrid signs with", fix)]
    return [Verdict(name, OK, "parses (ECDSA P-256)")]


# ---- Eventbrite ----
def check_eventbrite(base_url: str, token: str, organization_id: str) -> list[Verdict]:
    name = "Eventbrite token"
    fix_token = "create a private token (Account settings → Developer links → API keys) and set EVENTBRITE_TOKEN"
    if not token:
        return [Verdict(name, FAIL, "EVENTBRITE_TOKEN is not set", fix_token)]
    root = base_url.rstrip("/")
    try:
        _get(f"{root}/users/me/", token, "eventbrite")
        organizations = _eventbrite_organizations(root, token)
    except ProviderError as exc:
        return [_call_failed(name, exc, fix_token, "check EVENTBRITE_BASE_URL (https://www.eventbriteapi.com/v3)")]
    rows = [Verdict(name, OK, "token accepted (GET /users/me/)")]
    org = "Eventbrite organisation"
    if organization_id in organizations:
        rows.append(Verdict(org, OK, f"{organization_id} is one of the token's {len(organizations)} organisations"))
    else:
        known = ", ".join(organizations) or "none"
        rows.append(Verdict(org, FAIL, f"{organization_id or '(unset)'} is not one of the token's organisations "
                                       f"({known})", "set EVENTBRITE_ORGANIZATION_ID to your organisation's id"))
    return rows


def _eventbrite_organizations(root: str, token: str) -> list[str]:
    ids, continuation = [], None
    for _ in range(100):
        url = f"{root}/users/me/organizations/" + (f"?continuation={continuation}" if continuation else "")
        body = _get(url, token, "eventbrite")
        ids += [str(o.get("id")) for o in body.get("organizations") or []]
        pagination = body.get("pagination") or {}
        continuation = pagination.get("continuation")
        if not pagination.get("has_more_items") or not continuation:
            break
    return ids


# ---- HelloAsso ----
def check_helloasso(token_url: str, api_url: str, client_id: str, client_secret: str, slug: str) -> list[Verdict]:
    name = "HelloAsso client"
    fix_client = "copy the API client id and secret (Mon compte → Intégrations et API) into HELLOASSO_CLIENT_ID/SECRET"
    if not client_id or not client_secret:
        return [Verdict(name, FAIL, "HELLOASSO_CLIENT_ID or HELLOASSO_CLIENT_SECRET is not set", fix_client)]
    try:
        body = request_json(requests.Session(), "helloasso", "POST", token_url, budget=CHECK_BUDGET, data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret})
    except ProviderError as exc:
        if exc.status in (400, 401, 403):
            return [Verdict(name, FAIL, f"client credentials refused (HTTP {exc.status})", fix_client)]
        return [_call_failed(name, exc, fix_client, "check HELLOASSO_TOKEN_URL (https://api.helloasso.com/oauth2/token)")]
    rows = [Verdict(name, OK, "token issued (client credentials)")]
    org = "HelloAsso organisation"
    fix_slug = "set HELLOASSO_ORGANIZATION_SLUG to the slug in your page's address: helloasso.com/associations/<slug>"
    try:
        _get(f"{api_url.rstrip('/')}/organizations/{slug}", body["access_token"], "helloasso")
    except ProviderError as exc:
        if exc.status == 404:
            rows.append(Verdict(org, FAIL, f"{slug or '(unset)'} is not a known organisation", fix_slug))
        else:
            rows.append(_call_failed(org, exc, "give the API client access to this organisation", fix_slug))
        return rows
    rows.append(Verdict(org, OK, f"{slug} exists"))
    return rows


# ---- all of it ----
def run_checks(connections: Connections) -> list[Verdict]:
    c = connections
    return [
        *check_membership(c.membership_url, c.membership_mapping),
        *check_sendgrid(c.sendgrid_host, c.sendgrid_api_key),
        *check_webhook_public_key(c.webhook_public_key),
        *check_eventbrite(c.eventbrite_base_url, c.eventbrite_token, c.eventbrite_organization_id),
        *check_helloasso(c.helloasso_token_url, c.helloasso_api_url, c.helloasso_client_id,
                         c.helloasso_client_secret, c.helloasso_organization_slug),
    ]


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "[secret]")
    return text


def report(verdicts: list[Verdict]) -> str:
    """The table of verdicts, the fix for each failure or warning below it, then the overall verdict."""
    table = tabulate([(v.check, v.verdict, v.detail) for v in verdicts], headers=["check", "verdict", "found"],
                     tablefmt="simple")
    fixes = [f"  {v.check}: {v.fix}" for v in verdicts if v.fix and v.verdict != OK]
    failed = sum(v.verdict == FAIL for v in verdicts)
    warned = sum(v.verdict == WARN for v in verdicts)
    summary = (f"FAILED: {failed} of {len(verdicts)} checks failed" if failed else
               f"OK: all {len(verdicts)} checks passed" + (f" ({warned} warnings)" if warned else ""))
    return "\n".join([table, *(["", "To fix:", *fixes] if fixes else []), "", summary])


def run_check() -> int:
    """Print the table and the verdict; exit code 1 when any check failed."""
    connections = Connections.from_environment()
    verdicts = run_checks(connections)
    print(redact(report(verdicts), connections.secrets))
    return 1 if any(v.verdict == FAIL for v in verdicts) else 0
