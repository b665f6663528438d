"""What the sandbox's providers share: the clock, the state file, the simulated world, the listing cache.

State that must survive a restart (SendGrid's batches, held sends and pending webhook events, HelloAsso's
orders created by the world, the clock) lives in <data>/sandbox_state.json, written atomically; each
provider keeps its own keys in it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from alumni_orchestration.sandbox.world import load_recipients

LISTING_CACHE_SIZE = 64  # listings (one per query) kept for paging; each page then costs O(page)


class ApiError(Exception):
    """An error answer, in the body shape of the provider that raises it."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    # orjson shares the keys' strings between records: a million orders take a quarter less memory.
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()] if path.exists() else []


def jsonl_refs(path: Path, make: Callable[[bytes, dict[str, Any]], Any]) -> list[Any]:
    """One reference per record of a JSON-lines file, each keeping its line (not the parsed record)."""
    if not path.exists():
        return []
    with path.open("rb") as handle:
        return [make(line, orjson.loads(line)) for line in handle if line.strip()]


class LazyRows(Sequence):
    """A listing whose rows are built only when a page asks for them: the sandbox keeps references to
    its records, not a copy of every row of every listing (gigabytes for a million-member association)."""

    def __init__(self, sources: list[Any], build: Callable[[Any], Any]) -> None:
        self.sources, self.build = sources, build

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.build(source) for source in self.sources[index]]
        return self.build(self.sources[index])

    def __iter__(self):
        return (self.build(source) for source in self.sources)


def record_of(ref: Any) -> dict[str, Any]:
    """The record a reference (kept as its JSON line) stands for."""
    return ref.record()


class DuesTruth:
    """load_dues_truth's mapping, (member_id, dues_year) -> (p_pay, paid), in sorted numpy arrays."""

    def __init__(self, data_dir: Path) -> None:
        import numpy as np
        import pandas as pd

        path = data_dir / "ground_truth" / "dues_probabilities.csv"
        self._np = np
        if not path.exists():
            self.keys, self.p, self.paid = np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
            return
        frame = pd.read_csv(path, usecols=["member_id", "dues_year", "p_pay", "paid"], float_precision="round_trip",
                            dtype={"member_id": np.int64, "dues_year": np.int64, "p_pay": np.float64, "paid": np.int64})
        keys = frame["member_id"].to_numpy() * 100_000 + frame["dues_year"].to_numpy()
        order = np.argsort(keys, kind="stable")  # a key given twice keeps its last value, as a dict does
        self.keys, self.p, self.paid = keys[order], frame["p_pay"].to_numpy()[order], frame["paid"].to_numpy()[order]

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, key: tuple[int, int], default: Any = None) -> Any:
        member_id, year = key
        if not 0 <= year < 100_000:
            return default
        wanted = int(member_id) * 100_000 + int(year)
        position = int(self._np.searchsorted(self.keys, wanted, side="right")) - 1
        if position < 0 or int(self.keys[position]) != wanted:
            return default
        return float(self.p[position]), int(self.paid[position])


class SharedState:
    """The data folder, one lock, the clock and the state file, the simulated world and the listing cache.

    Providers talk to each other only through `publish`/`subscribe` (a recipient who pays after a SendGrid
    reminder becomes a HelloAsso order), so none imports another."""

    def __init__(self, data_dir: Path) -> None:
        self.data = Path(data_dir)
        self.lock = threading.RLock()
        self.manifest: dict[str, Any] = read_json(self.data / "manifest.json", {})
        self.seed = int(self.manifest.get("config", {}).get("seed", 0))
        self.state_path = self.data / "sandbox_state.json"
        self.store: dict[str, Any] = read_json(self.state_path, {"clock_offset": 0.0})
        self.store.setdefault("clock_offset", 0.0)
        self._before_save: list[Callable[[], None]] = []
        self._subscribers: dict[str, list[Callable[[Any], None]]] = {}
        self._recipients: dict[str, Any] | None = None  # the world's truth, loaded when first mail is sent
        self._dues_truth: DuesTruth | None = None
        self._listings: OrderedDict[Any, Any] = OrderedDict()

    def organization(self, field: str) -> str:
        """The association's id on a provider (manifest's organization.<field>)."""
        return self.manifest.get("organization", {}).get(field, "")

    # ---- the simulated world ----
    @property
    def recipients(self) -> dict[str, Any]:
        with self.lock:
            if self._recipients is None:
                self._recipients = load_recipients(self.data)
            return self._recipients

    @property
    def dues_truth(self) -> DuesTruth:
        with self.lock:
            if self._dues_truth is None:
                self._dues_truth = DuesTruth(self.data)
            return self._dues_truth

    def subscribe(self, event: str, handler: Callable[[Any], None]) -> None:
        self._subscribers.setdefault(event, []).append(handler)

    def publish(self, event: str, payload: Any) -> None:
        for handler in self._subscribers.get(event, []):
            handler(payload)

    # ---- clock ----
    def now(self) -> float:
        return time.time() + self.store["clock_offset"]

    def set_clock(self, now: float) -> None:
        with self.lock:
            self.store["clock_offset"] = now - time.time()
            self.save()

    def advance_clock(self, seconds: float) -> None:
        with self.lock:
            self.store["clock_offset"] += seconds
            self.save()

    # ---- persistence ----
    def before_save(self, hook: Callable[[], None]) -> None:
        """`hook` brings a provider's keys of the store up to date before each save."""
        self._before_save.append(hook)

    def save(self) -> None:
        with self.lock:
            for hook in self._before_save:
                hook()
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.store))
            os.replace(tmp, self.state_path)

    def append(self, name: str, record: dict[str, Any]) -> None:
        self.append_many(name, [record])

    def append_many(self, name: str, records: list[dict[str, Any]]) -> None:
        """One write and one fsync for many records: a 1,000-recipient send must not cost 1,000 fsyncs."""
        if not records:
            return
        with open(self.data / name, "a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
            handle.flush()
            os.fsync(handle.fileno())

    # ---- listings: computed once per query, then paged ----
    def listing(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """The whole listing for a query (its key, led by the provider's name, leaves out the page and the
        page size), cached."""
        with self.lock:
            rows = self._listings.get(key)
            if rows is None:
                rows = self._listings[key] = compute()
                while len(self._listings) > LISTING_CACHE_SIZE:
                    self._listings.popitem(last=False)
            else:
                self._listings.move_to_end(key)
            return rows

    def drop_listings(self, provider: str) -> None:
        with self.lock:
            for key in [k for k in self._listings if k[0] == provider]:
                del self._listings[key]
