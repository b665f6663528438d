"""Every place the platform stores personal data, and how an erasure empties it of one member.

| store | what | erasure |
|---|---|---|
| warehouse.raw | raw.* source tables and raw.quarantine | rows deleted; SendGrid events of a campaign anonymised |
| warehouse.derived | intermediate.*, marts.*, operations.*, any other schema's tables | rows deleted |
| warehouse.scoring | scoring.* (scores, score history, explanations) | rows deleted |
| warehouse.campaigns | ledger, outbox, audience, decisions | anonymised: pseudonym, personal columns emptied |
| landing | $SENDGRID_WEBHOOK_LANDING day files | rewritten atomically without the member's events |
| exports | $ALUMNI_HOME/exports/** | records removed, files rewritten atomically |
| models | $ALUMNI_HOME/models/** | rows removed from saved DataFrames (validation predictions) |
| logs | *.log, *.out, *.err, *.txt under $ALUMNI_HOME (Dagster's compute logs included) | lines removed |

`privacy.erased_members` (member id, email hashes) and `privacy.erasure_log` (counts) are kept by design.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from alumni_orchestration.privacy import file_stores, warehouse_stores
from alumni_orchestration.privacy.subject import Subject


@dataclass
class ErasureTarget:
    """Where one erasure works: the open warehouse (inside its transaction) and the folders."""

    conn: duckdb.DuckDBPyConnection
    home: Path
    landing: Path
    subject: Subject
    pseudonyms: dict[int, int]  # member id -> its pseudonym in anonymised rows, never stored

    @property
    def exports(self) -> Path:
        return self.home / "exports"

    @property
    def models(self) -> Path:
        return self.home / "models"


@dataclass(frozen=True)
class Store:
    name: str
    in_warehouse: bool
    erase: Callable[[ErasureTarget], Counter]


def _warehouse_store(name: str) -> Store:
    return Store(name, True, lambda t: warehouse_stores.erase_tables(t.conn, name, t.subject, t.pseudonyms))


STORES: tuple[Store, ...] = (
    *(_warehouse_store(name) for name in warehouse_stores.WAREHOUSE_STORES),
    Store("landing", False, lambda t: file_stores.erase_landing(t.landing, t.subject, t.pseudonyms)),
    Store("exports", False, lambda t: file_stores.erase_folder(t.exports, t.subject)),
    Store("models", False, lambda t: file_stores.erase_models(t.models, t.subject)),
    Store("logs", False, lambda t: file_stores.erase_logs(t.home, t.subject)),
)
STORE_NAMES = tuple(store.name for store in STORES)
