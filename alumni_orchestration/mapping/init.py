"""`alumni init SOURCE`: write the proposed `membership_mapping.yaml` (each guess with its evidence, each
gap flagged) and an environment template; print the proposals. It never writes a secret: the template's
secrets are empty, and a database URL is written without its password."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa
import yaml

from alumni_orchestration.contracts.membership import CONTRACT_TABLES
from alumni_orchestration.mapping import MAPPING_ENV
from alumni_orchestration.mapping.propose import TableProposal, propose

# Every variable of the README's Configuration table; the secrets are left empty.
ENV_VARIABLES = (
    ("ALUMNI_HOME", False), ("MEMBERSHIP_DATABASE_URL", True), (MAPPING_ENV, False),
    ("SENDGRID_API_KEY", True), ("SENDGRID_HOST", False), ("SENDGRID_WEBHOOK_PUBLIC_KEY", False),
    ("SENDGRID_WEBHOOK_LANDING", False), ("EVENTBRITE_TOKEN", True), ("EVENTBRITE_ORGANIZATION_ID", False),
    ("EVENTBRITE_BASE_URL", False), ("HELLOASSO_CLIENT_ID", True), ("HELLOASSO_CLIENT_SECRET", True),
    ("HELLOASSO_ORGANIZATION_SLUG", False), ("HELLOASSO_API_URL", False), ("HELLOASSO_TOKEN_URL", False),
    ("HELLOASSO_ITEM_EMAIL_LABELS", False), ("ALUMNI_PARTITIONS_START", False), ("ALUMNI_SEND_MODE", False),
    ("ALUMNI_FROM_EMAIL", False), ("ALUMNI_FROM_NAME", False), ("ALUMNI_REPLY_TO", False),
    ("ALUMNI_ALERT_EMAIL", False), ("ALUMNI_WEBSERVER_URL", False),
)


def _flow(value: object) -> str:
    """One value as inline YAML (in a list, so that a plain string gets no document end marker)."""
    return yaml.safe_dump([value], default_flow_style=True, allow_unicode=True, width=10_000).strip()[1:-1]


def render_mapping(proposals: list[TableProposal]) -> str:
    lines = ["# Proposed by `alumni init`: review every line (README: Your association's data).", "tables:"]
    for p in proposals:
        lines += [f"  {p.target}:", f"    source: {_flow(p.source)}", "    columns:"]
        for column in (c.name for c in CONTRACT_TABLES[p.target].columns):
            guess = p.guesses.get(column)
            if guess is None:
                if column in p.missing_required:
                    lines.append(f"      # {column}: REQUIRED, no source column found: map it before the first load")
                continue
            rule = guess.rule["column"] if set(guess.rule) == {"column"} else guess.rule
            lines.append(f"      {column}: {_flow(rule)}")
            lines.append(f"        # evidence: {'; '.join(guess.evidence)}")
            lines += [f"        # CHECK: {flag}" for flag in guess.flags]
    return "\n".join(lines) + "\n"


def _without_password(url: str) -> str:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return ""
    if not parsed.password:
        return url
    # URL.set(password=None) would keep the password: None means "unchanged" there.
    bare = sa.engine.URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database,
                                parsed.query)
    return bare.render_as_string(hide_password=False)


def render_env(mapping_path: Path, source: str) -> str:
    lines = ["# Environment of the association (README: Configuration). Secrets are left empty: fill them in",
             "# where they are kept, never in a file that git tracks."]
    for name, secret in ENV_VARIABLES:
        value = ""
        if name == MAPPING_ENV:
            value = str(mapping_path.resolve())
        elif name == "MEMBERSHIP_DATABASE_URL" and "://" in source:
            value = _without_password(source)  # its password is the secret; add it where secrets are kept
        lines.append(f"{name}={value}" + ("  # secret" if secret else ""))
    return "\n".join(lines) + "\n"


def closing_note(proposals: list[TableProposal]) -> str:
    out = []
    for p in proposals:
        where = p.source.get("file") or p.source.get("table")
        out.append(f"{p.target} <- {where}")
        for target, guess in p.guesses.items():
            out.append(f"  {target:<20} <- {guess.rule['column']!s:<28} {'; '.join(guess.evidence)}"
                       + (f"  [CHECK: {'; '.join(guess.flags)}]" if guess.flags else ""))
        out += [f"  {target:<20} <- ?  REQUIRED: no source column found" for target in p.missing_required]
    return "\n".join(out)


def run_init(source: str, out_dir: Path) -> int:
    proposals = propose(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    mapping_path = out_dir / "membership_mapping.yaml"
    mapping_path.write_text(render_mapping(proposals), encoding="utf-8")
    (out_dir / "alumni.env.template").write_text(render_env(mapping_path, source), encoding="utf-8")
    shown = re.sub(r":[^:@/]+@", ":***@", source)
    print(f"Proposed mapping of {shown} in {mapping_path} (and alumni.env.template):\n{closing_note(proposals)}")
    flagged = sum(len(p.missing_required) for p in proposals)
    print(f"{flagged} required column(s) to map by hand." if flagged else
          "Every required column has a guess: review them, then run `alumni check`.")
    return 1 if flagged else 0
