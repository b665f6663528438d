"""The webhook landing location: raw batches, one folder per Europe/Paris day.

Layout: `<landing>/dt=YYYY-MM-DD/<received_unix_ns>-<sha256[:16]>.json`, the exact bytes SendGrid
signed. Local folders get durable writes (temporary file, fsync, atomic rename, fsync of the
folder); an object store (any fsspec URL through universal_pathlib) gets atomic whole-object PUTs.
Readers ignore temporary files.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from upath import UPath

from alumni_orchestration.ingest.sendgrid.records import RejectedEvent, clean_sendgrid_event

TEMP_PREFIX = ".tmp-"
SOURCE = "sendgrid.webhook"


def batch_name(raw: bytes, received_ns: int | None = None) -> str:
    received_ns = received_ns if received_ns is not None else time.time_ns()
    return f"{received_ns}-{hashlib.sha256(raw).hexdigest()[:16]}.json"


class Landing:
    """A landing location: a local folder path, or an fsspec URL (s3://, gs://, ...)."""

    def __init__(self, location: str | Path) -> None:
        self.location = str(location)
        self.root = UPath(self.location)
        self.is_local = self.root.protocol in ("", "file", "local")

    def day_dir(self, day: str) -> UPath:
        return self.root / f"dt={day}"

    def write_batch(self, day: str, name: str, raw: bytes) -> str:
        """Write one batch so that, once this returns, it survives a crash or a power cut."""
        if not self.is_local:
            (self.day_dir(day) / name).write_bytes(raw)  # object stores: atomic PUT
            return name
        folder = Path(self.root.path) / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, folder / name)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return name

    def days(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name[3:] for p in self.root.iterdir() if p.name.startswith("dt="))

    def list_batches(self, day: str) -> list[str]:
        folder = self.day_dir(day)
        if not folder.exists():
            return []
        return sorted(p.name for p in folder.iterdir() if p.name.endswith(".json") and not p.name.startswith(TEMP_PREFIX))

    def read_batch(self, day: str, name: str) -> bytes:
        return (self.day_dir(day) / name).read_bytes()


@dataclass
class DayStats:
    batches: int = 0
    events_read: int = 0
    events_kept: int = 0
    duplicates: int = 0
    quarantined: Counter = field(default_factory=Counter)

    def conserved(self) -> bool:
        return self.events_read == self.events_kept + self.duplicates + sum(self.quarantined.values())


def _reject(record_key: str | None, reason: str, payload: Any) -> dict[str, Any]:
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, default=str)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, which `json` reads: escaped, so it can be stored
            text = json.dumps(payload, default=str)
    return {"source": SOURCE, "record_key": record_key, "reason": reason, "payload": text[:2000]}


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:  # orjson is stricter (NaN, huge integers, lone surrogates): as json reads it
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None


def read_day_batches(landing: Landing, day: str, seen: set[str] | None = None) -> tuple[
        list[dict[str, Any]], list[str], list[dict[str, Any]], DayStats]:
    """Every usable event landed on `day`, cleaned (each stored field at its typed value) and deduplicated
    on sg_event_id (first occurrence wins), with the batch each came in, the rejected records and the counts.

    `seen` carries the sg_event_ids of the days read before this one in the same load, so that a batch
    SendGrid re-delivered after midnight counts once, under the first day it landed.
    A malformed batch counts as one record read and one quarantined; within a batch, each event is
    a record. events_read = events_kept + duplicates + quarantined, always.
    """
    stats = DayStats()
    events: list[dict[str, Any]] = []
    batches: list[str] = []
    rejected: list[dict[str, Any]] = []
    seen = set() if seen is None else seen
    for name in landing.list_batches(day):
        stats.batches += 1
        raw = landing.read_batch(day, name)
        batch = _loads(raw)
        if not isinstance(batch, list):
            stats.events_read += 1
            stats.quarantined["malformed_json"] += 1
            rejected.append(_reject(name, "malformed_json", raw[:2000].decode("utf-8", "replace")))
            continue
        for event in batch:
            stats.events_read += 1
            try:
                clean = clean_sendgrid_event(event)
            except RejectedEvent as error:
                stats.quarantined[error.reason] += 1
                rejected.append(_reject(_record_key(event), error.reason, event))
                continue
            if clean["sg_event_id"] in seen:
                stats.duplicates += 1
                continue
            seen.add(clean["sg_event_id"])
            events.append(clean)
            batches.append(name)
    stats.events_kept = len(events)
    return events, batches, rejected, stats


def read_day_events(landing: Landing, day: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], DayStats]:
    """`read_day_batches`, each event carrying its batch's name under "_batch"."""
    events, batches, rejected, stats = read_day_batches(landing, day)
    return [{**e, "_batch": b} for e, b in zip(events, batches, strict=True)], rejected, stats


def _invalid_reason(event: Any) -> str | None:
    """Why an event cannot be stored, or None."""
    try:
        clean_sendgrid_event(event)
    except RejectedEvent as error:
        return error.reason
    return None


def _record_key(event: Any) -> str | None:
    """The rejected event's sg_event_id when it has a text reading (never a list or an object)."""
    key = event.get("sg_event_id") if isinstance(event, dict) else None
    if isinstance(key, bool) or not isinstance(key, str | int):
        return None
    return str(key)[:200].encode("utf-8", "replace").decode("utf-8")


# A write holds its temporary file for one write and fsync of at most a few MB: seconds. The receiver is not
# the only writer (`alumni demo` lands the history into the same folders while it runs), so only temporary
# files older than this are another writer's leftovers from a kill, never a write in progress.
STALE_TEMP_SECONDS = 15 * 60


def remove_stale_temp_files(landing: Landing, older_than_seconds: float = STALE_TEMP_SECONDS,
                            now: float | None = None) -> list[str]:
    """Remove the temporary files a killed write left behind (local folders only; object-store PUTs leave
    none). Returns their paths relative to the landing root. Batches are never touched."""
    if not landing.is_local:
        return []
    root = Path(landing.root.path)
    cutoff = (time.time() if now is None else now) - older_than_seconds
    removed = []
    for tmp in sorted(root.glob(f"dt=*/{TEMP_PREFIX}*")):
        try:
            if tmp.is_file() and tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed.append(str(tmp.relative_to(root)))
        except FileNotFoundError:  # renamed or removed meanwhile
            continue
    return removed
