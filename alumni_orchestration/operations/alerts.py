"""The run-failure alert's wording (pure): run link, failed steps, error summary, and no personal data.

Error texts come from anywhere (a provider's answer, DuckDB quoting a value, a Python repr of a row),
so they are shortened to their first line and masked before they leave: anything that looks like an
email address, a single-quoted literal (how DuckDB and Python quote values), credentials in a URL and
API keys. The full error stays behind the run link, in the Dagster UI.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_ERROR_CHARS = 240

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)
_API_KEY = re.compile(r"\bSG\.[\w-]{6,}(?:\.[\w-]+)?")
_BEARER = re.compile(r"(bearer\s+)\S+", re.IGNORECASE)
_QUOTED = re.compile(r"'[^'\n]*'")


@dataclass(frozen=True)
class FailedStep:
    step_key: str
    error_class: str | None = None
    error_message: str | None = None


def scrub(text: str) -> str:
    """The first line of an error text, masked and shortened."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    line = lines[0] if lines else ""
    line = _URL_CREDENTIALS.sub(r"\1[credentials]@", line)
    line = _EMAIL.sub("[email]", line)
    line = _API_KEY.sub("[key]", line)
    line = _BEARER.sub(r"\1[token]", line)
    line = _QUOTED.sub("'…'", line)
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def run_url(webserver_url: str, run_id: str) -> str:
    return f"{webserver_url.rstrip('/')}/runs/{run_id}"


def failure_alert(run_id: str, job_name: str, failed_steps: Sequence[FailedStep], webserver_url: str, *,
                  run_error: str | None = None, partition_range: tuple[str, str] | None = None,
                  will_retry: bool = False) -> tuple[str, str]:
    """(subject, text) of the email telling the digital lead that a run failed (will_retry: Dagster's run
    retries re-execute it, so the lead knows whether to act now)."""
    steps = list(failed_steps)
    subject = f"[alumni] Dagster run failed: {job_name}"
    if steps:
        subject += f" ({', '.join(s.step_key for s in steps[:3])}{', …' if len(steps) > 3 else ''})"
    lines = [f"The Dagster run {run_id} of job {job_name} failed."]
    if partition_range:
        lines.append(f"Days covered: {partition_range[0]} .. {partition_range[1]} (Europe/Paris).")
    if will_retry:
        lines.append("Dagster re-executes it automatically; another alert follows if that attempt fails too.")
    lines += ["", f"Run: {run_url(webserver_url, run_id)}", ""]
    if steps:
        lines.append(f"Failed step{'s' if len(steps) > 1 else ''} ({len(steps)}):")
        for step in steps:
            message = step.error_message or ""
            if step.error_class and message.startswith(f"{step.error_class}:"):  # Dagster's messages repeat it
                message = message[len(step.error_class) + 1:]
            error = ": ".join(part for part in (step.error_class, scrub(message)) if part)
            lines.append(f"- {step.step_key}" + (f" — {error}" if error else ""))
    else:
        lines.append("No step failed: the run itself did not complete"
                     + (f" — {scrub(run_error)}" if run_error else "."))
    lines += ["", "Open the run for the full logs, then re-execute it from the failure (UI: Re-execute > From failure).",
              "Error texts in this message are shortened and masked: it holds no personal data."]
    return subject, "\n".join(lines)
