"""The stores of personal data outside the warehouse, under $ALUMNI_HOME: the webhook landing folder,
exports, model artefacts and logs. Each file is rewritten atomically (temporary file, fsync, rename)
without the member, or removed when it is about the member alone."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import joblib
import orjson
import pandas as pd

from alumni_orchestration.privacy.subject import Subject, email_sha256, row_condition
from alumni_orchestration.privacy.warehouse_stores import used_params
from alumni_orchestration.webhook.landing import Landing

EMAIL_IN_TEXT = re.compile(r"[^\s\"',;<>:()\[\]{}]+@[^\s\"',;<>()\[\]{}]+")
MEMBER_FIELD = re.compile(r"\"member_id\"\s*:\s*\"?(-?\d+)\"?")
LOG_SUFFIXES = (".log", ".out", ".err", ".txt")
LINE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", *LOG_SUFFIXES)
# Folders under $ALUMNI_HOME with their own store; `demo` is the simulated outside world (the association's
# own database and the providers' data), not the platform's.
OWN_FOLDERS = ("landing", "exports", "models", "demo")
# SendGrid event fields kept when a campaign event is anonymised: what campaign results count.
KEPT_EVENT_FIELDS = ("sg_event_id", "event", "timestamp", "sg_machine_open", "campaign_id", "cycle", "arm",
                     "category", "asm_group_id", "sg_message_id", "type")


def mentions(text: str, subject: Subject) -> bool:
    """The text quotes one of the member's emails (compared hashed), their full name or their member id field."""
    lowered = text.lower()
    if any(email_sha256(found.strip(".")) in subject.email_hashes for found in EMAIL_IN_TEXT.findall(lowered)):
        return True
    if any(f"{first} {last}" in lowered for first, last in subject.names):
        return True
    return any(match in set(subject.id_texts()) for match in MEMBER_FIELD.findall(text))


def write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _event_is_subject(event: Any, subject: Subject) -> bool:
    if not isinstance(event, dict):
        return mentions(json.dumps(event, default=str), subject)
    if str(event.get("member_id")) in subject.id_texts():
        return True
    email = event.get("email")
    if isinstance(email, str) and email_sha256(email) in subject.email_hashes:
        return True
    return mentions(json.dumps(event, default=str, ensure_ascii=False), subject)


def _anonymised_event(event: dict, pseudonyms: dict[int, int]) -> dict:
    """Only what campaign results count; the member id becomes the member's pseudonym (the first one for an
    event matched by address alone)."""
    member = str(event.get("member_id"))
    pseudonym = pseudonyms.get(int(member)) if member.lstrip("-").isdigit() else None
    return {**{k: event[k] for k in KEPT_EVENT_FIELDS if k in event},
            "member_id": str(pseudonym if pseudonym is not None else next(iter(pseudonyms.values())))}


def erase_landing(landing_dir: Path, subject: Subject, pseudonyms: dict[int, int]) -> Counter:
    """Rewrite each day's batches without the member's events; a campaign's events stay, anonymised, so its
    delivered, open and click counts hold when the day is loaded again."""
    counts: Counter = Counter()
    landing = Landing(landing_dir)
    for day in landing.days():
        for name in landing.list_batches(day):
            raw = landing.read_batch(day, name)
            try:
                batch = orjson.loads(raw)
            except orjson.JSONDecodeError:
                batch = None
            if not isinstance(batch, list):
                if mentions(raw.decode("utf-8", "replace"), subject):
                    landing.write_batch(day, name, b"[]")
                    counts["files_rewritten"] += 1
                continue
            kept, changed = [], 0
            for event in batch:
                if not _event_is_subject(event, subject):
                    kept.append(event)
                    continue
                changed += 1
                if isinstance(event, dict) and event.get("campaign_id"):
                    kept.append(_anonymised_event(event, pseudonyms))
            if changed:
                landing.write_batch(day, name, orjson.dumps(kept))  # same name: a re-load replaces the day
                counts["files_rewritten"] += 1
                counts["landing_events"] += changed
    return counts


def _filter_json(value: Any, subject: Subject) -> tuple[Any, int]:
    if isinstance(value, list):
        kept = [v for v in value if not (isinstance(v, dict) and _event_is_subject(v, subject))]
        removed = len(value) - len(kept)
        out = []
        for v in kept:
            inner, n = _filter_json(v, subject)
            out.append(inner)
            removed += n
        return out, removed
    if isinstance(value, dict):
        out, removed = {}, 0
        for k, v in value.items():
            out[k], n = _filter_json(v, subject)
            removed += n
        return out, removed
    return value, 0


def _rewrite_lines(path: Path, subject: Subject) -> int:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix in (".csv", ".tsv"):
        rows = list(csv.reader(io.StringIO(text), delimiter="\t" if path.suffix == ".tsv" else ","))
        header = [h.lower() for h in rows[0]] if rows else []
        id_at = header.index("member_id") if "member_id" in header else None
        kept = rows[:1] + [r for r in rows[1:] if not (mentions(" ".join(r), subject) or (
            id_at is not None and id_at < len(r) and r[id_at] in subject.id_texts()))]
        removed = len(rows) - len(kept)
        out = io.StringIO()
        csv.writer(out, delimiter="\t" if path.suffix == ".tsv" else ",", lineterminator="\n").writerows(kept)
        new = out.getvalue()
    else:
        lines = text.splitlines(keepends=True)
        kept_lines = [line for line in lines if not mentions(line, subject)]
        removed, new = len(lines) - len(kept_lines), "".join(kept_lines)
    if removed:
        write_atomically(path, new.encode("utf-8"))
    return removed


def _rewrite_parquet(path: Path, subject: Subject) -> int:
    frame = pd.read_parquet(path)
    where, params = row_condition(list(frame.columns), subject)
    if where is None:
        return 0
    with duckdb.connect() as conn:
        conn.register("rows", frame)
        sql = f"select * from rows where not coalesce({where}, false)"
        kept = conn.execute(sql, used_params(sql, params)).df()
    if len(kept) == len(frame):
        return 0
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=path.parent)
    os.close(fd)
    kept.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return len(frame) - len(kept)


def erase_file(path: Path, subject: Subject) -> int:
    """Remove the member from one file; returns the records removed (a file about them alone is deleted)."""
    if path.suffix in LINE_SUFFIXES:
        return _rewrite_lines(path, subject)
    if path.suffix == ".parquet":
        return _rewrite_parquet(path, subject)
    if path.suffix == ".json":
        document = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, dict) and _event_is_subject(document, subject) and not any(
                isinstance(v, list) for v in document.values()):
            path.unlink()
            return 1
        filtered, removed = _filter_json(document, subject)
        if isinstance(filtered, dict) and str(filtered.get("member_id")) in subject.id_texts():
            path.unlink()  # an access export, say: about the member alone
            return max(removed, 1)
        if removed:
            write_atomically(path, json.dumps(filtered, ensure_ascii=False, default=str).encode("utf-8"))
        return removed
    return 0


def _files(root: Path, suffixes: tuple[str, ...] | None = None) -> Iterator[Path]:
    if not root.exists():
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith(".tmp-") and (suffixes is None or path.suffix in suffixes):
            yield path


def erase_folder(root: Path, subject: Subject, skip_suffixes: tuple[str, ...] = ()) -> Counter:
    counts: Counter = Counter()
    for path in _files(root):
        if path.suffix in skip_suffixes:
            continue
        removed = erase_file(path, subject)
        if removed:
            counts["files_rewritten"] += 1
            counts["records"] += removed
    return counts


def erase_logs(home: Path, subject: Subject) -> Counter:
    """Log lines mentioning the member, in any log under $ALUMNI_HOME outside the other stores' folders."""
    counts: Counter = Counter()
    for path in _files(home, LOG_SUFFIXES):
        if path.relative_to(home).parts[0] in OWN_FOLDERS:
            continue
        removed = _rewrite_lines(path, subject)
        if removed:
            counts["files_rewritten"] += 1
            counts["lines"] += removed
    return counts


def _scrub_frames(value: Any, subject: Subject, found: list[dict] | None = None) -> tuple[Any, int]:
    """Drop the member's rows from every DataFrame a saved object holds (validation predictions, ...);
    the dropped rows are added to `found` when given."""
    if isinstance(value, pd.DataFrame):
        if "member_id" not in value.columns:
            return value, 0
        mask = value["member_id"].astype(str).isin(subject.id_texts())
        if found is not None:
            found += value[mask].astype(object).to_dict("records")
        return value[~mask], int(mask.sum())
    if isinstance(value, dict):
        removed = 0
        for key in list(value):
            value[key], n = _scrub_frames(value[key], subject, found)
            removed += n
        return value, removed
    if hasattr(value, "__dataclass_fields__"):
        removed = 0
        for name in value.__dataclass_fields__:
            new, n = _scrub_frames(getattr(value, name), subject, found)
            if n:
                object.__setattr__(value, name, new)
                removed += n
        return value, removed
    return value, 0


def model_rows(model_dir: Path, subject: Subject) -> dict[str, list[dict]]:
    """The member's rows in each saved model (read only), by file relative to `model_dir`."""
    out: dict[str, list[dict]] = {}
    for path in _files(model_dir, (".joblib",)):
        found: list[dict] = []
        _scrub_frames(joblib.load(path), subject, found)
        if found:
            out[str(path.relative_to(model_dir))] = found
    return out


def erase_models(model_dir: Path, subject: Subject) -> Counter:
    counts: Counter = Counter()
    for path in _files(model_dir, (".joblib",)):
        saved = joblib.load(path)
        saved, removed = _scrub_frames(saved, subject)
        if removed:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            os.close(fd)
            joblib.dump(saved, tmp)
            os.replace(tmp, path)
            counts["files_rewritten"] += 1
            counts["rows"] += removed
    counts += erase_folder(model_dir, subject, skip_suffixes=(".joblib",))
    return counts
