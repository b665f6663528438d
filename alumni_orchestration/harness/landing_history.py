"""The association's webhook history, landed as the SendGrid receiver would have landed it."""

from __future__ import annotations

from pathlib import Path

from alumni_orchestration import settings

BATCH_SIZE = 1000  # SendGrid posts batches of about this size


def land_history(data: Path, landing_dir: Path | None = None) -> int:
    """One folder per day into `landing_dir` (default: the configured webhook landing); days already
    landed are skipped. Returns the number of batches written."""
    from alumni_orchestration.webhook.landing import Landing

    landing = Landing(str(landing_dir or settings.webhook_landing_dir()))
    landed = 0
    for day_file in sorted((data / "providers" / "sendgrid" / "events").glob("*.jsonl")):
        day = day_file.stem
        if landing.list_batches(day):
            continue
        lines = day_file.read_text().splitlines()
        for start in range(0, len(lines), BATCH_SIZE):
            body = ("[" + ",".join(lines[start:start + BATCH_SIZE]) + "]").encode()
            landing.write_batch(day, f"history-{start // BATCH_SIZE:05d}.json", body)
            landed += 1
    return landed

