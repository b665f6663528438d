"""HelloAsso v5: OAuth2 client credentials (refreshed on expiry), forms, orders, payments.

Pagination follows `continuationToken` and ends on an EMPTY `data` list: HelloAsso keeps
returning a token, and totalCount/totalPages are often -1, so neither can be trusted to stop.

Staging (`stage_orders`, `stage_payments`, `window_summary`, `load_staged`): the records of a window
are flattened a chunk of pages at a time into Parquet files of raw rows, so memory holds one chunk,
not the window; the warehouse then replaces the window's rows from those files in a few statements.
No Dagster here.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
import pyarrow.parquet as pq
import requests

from alumni_orchestration.ingest.collector import collector_paused
from alumni_orchestration.ingest.helloasso.records import (
    ITEM_EMAIL_LABELS,
    flatten_helloasso_order_details,
    flatten_helloasso_payments,
)
from alumni_orchestration.ingest.http import ProviderError, RetryBudget, request_json
from alumni_orchestration.ingest.records import RAW_DDL, arrow_schema, chunked, rows_to_arrow
from alumni_orchestration.ingest.typed import FieldError, as_iso_timestamp, as_object
from alumni_orchestration.warehouse import RAW_SCHEMA, parquet_source, table_exists

# (formType, formSlug) -> (meta.updatedAt as stored, city): the places an earlier load read from /public.
KnownPlaces = dict[tuple[str, str], tuple[dt.datetime, str]]


def stored_places(conn: duckdb.DuckDBPyConnection) -> KnownPlaces:
    """The forms the warehouse holds with a city and their meta.updatedAt."""
    if not table_exists(conn, f"{RAW_SCHEMA}.helloasso_forms"):
        return {}
    rows = conn.execute(f"""select form_type, form_slug, updated_at, city from {RAW_SCHEMA}.helloasso_forms
                            where city is not null and updated_at is not null""").fetchall()
    return {(form_type, slug): (updated, city) for form_type, slug, updated, city in rows}


def unchanged_place(form: dict[str, Any], known: KnownPlaces) -> dict[str, str] | None:
    """The stored place of a form whose listing shows the same meta.updatedAt as when its place was read
    (HelloAsso moves updatedAt when a form is edited), else None: its /public details must be read."""
    stored = known.get((form.get("formType"), form.get("formSlug")))
    if stored is None:
        return None
    try:
        updated = as_iso_timestamp(as_object(form.get("meta"), "meta").get("updatedAt"), "meta.updatedAt")
    except FieldError:
        return None
    return {"city": stored[1]} if updated == stored[0] else None

PROVIDER = "HelloAsso"


def paginate(fetch: Callable[[dict[str, Any]], dict[str, Any]], params: dict[str, Any], endpoint: str,
             max_pages: int = 100_000) -> Iterator[dict[str, Any]]:
    token: str | None = None
    for _ in range(max_pages):
        page_params = dict(params)
        if token:
            page_params["continuationToken"] = token
        body = fetch(page_params)
        data = body.get("data") or []
        if not data:
            return
        yield from data
        new_token = (body.get("pagination") or {}).get("continuationToken")
        if not new_token or new_token == token:
            raise ProviderError(PROVIDER, endpoint, "a non-empty page came without a new continuationToken")
        token = new_token
    raise ProviderError(PROVIDER, endpoint, f"more than {max_pages} pages")


@dataclass
class HelloAssoClient:
    api_url: str
    token_url: str
    client_id: str
    client_secret: str
    organization_slug: str
    budget: RetryBudget = field(default_factory=RetryBudget)
    session: requests.Session = field(default_factory=requests.Session)
    _access: str | None = None
    _refresh: str | None = None
    _expires_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    details_read: int = 0  # forms_with_place: /public calls made, and places kept from the last load
    places_kept: int = 0

    def _token(self, force: bool = False) -> str:
        with self._lock:
            if not force and self._access and time.time() < self._expires_at - 60:
                return self._access
            body = None
            if self._refresh:
                try:
                    body = request_json(self.session, PROVIDER, "POST", self.token_url, budget=self.budget,
                                        data={"grant_type": "refresh_token", "refresh_token": self._refresh,
                                              "client_id": self.client_id})
                except ProviderError:
                    body = None  # an expired refresh token: start again from the client credentials
            if body is None:
                body = request_json(self.session, PROVIDER, "POST", self.token_url, budget=self.budget,
                                    data={"grant_type": "client_credentials", "client_id": self.client_id,
                                          "client_secret": self.client_secret})
            self._access = body["access_token"]
            self._refresh = body.get("refresh_token")
            self._expires_at = time.time() + float(body.get("expires_in", 1800))
            return self._access

    def _fetcher(self, path: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        url = f"{self.api_url.rstrip('/')}{path}"

        def fetch(params: dict[str, Any]) -> dict[str, Any]:
            return request_json(
                self.session, PROVIDER, "GET", url, params=params, budget=self.budget,
                headers={"Authorization": f"Bearer {self._token()}"},
                on_unauthorized=lambda: {"Authorization": f"Bearer {self._token(force=True)}"},
            )

        return fetch

    def forms(self) -> Iterator[dict[str, Any]]:
        path = f"/organizations/{self.organization_slug}/forms"
        return paginate(self._fetcher(path), {"formTypes": ["Event", "Membership"], "pageSize": 100}, path)

    def form_public(self, form_type: str, form_slug: str) -> dict[str, Any] | None:
        """A form's public details (FormPublicModel), or None when HelloAsso has none to show (404)."""
        path = f"/organizations/{self.organization_slug}/forms/{quote(form_type, safe='')}/{quote(form_slug, safe='')}/public"
        try:
            return self._fetcher(path)({})
        except ProviderError as error:
            if error.status == 404:
                return None
            raise

    def forms_with_place(self, known: KnownPlaces | None = None) -> Iterator[Any]:
        """The forms, an Event's with its place: the listing (FormLightModel) documents no place, only a form's
        /public details do, so an event's city costs one call per Event form, unless `known` holds its place
        and the form is unchanged since (`unchanged_place`)."""
        for form in self.forms():
            if (isinstance(form, dict) and "place" not in form and form.get("formType") == "Event"
                    and isinstance(form.get("formSlug"), str) and form["formSlug"]):
                kept = unchanged_place(form, known or {})
                if kept is not None:
                    self.places_kept += 1
                    form = {**form, "place": kept}
                else:
                    self.details_read += 1
                    public = self.form_public(form["formType"], form["formSlug"])
                    if isinstance(public, dict) and public.get("place") is not None:
                        form = {**form, "place": public["place"]}
            yield form

    def orders(self, date_from: str, date_to: str) -> Iterator[dict[str, Any]]:
        """Orders (with items) dated in [date_from, date_to)."""
        path = f"/organizations/{self.organization_slug}/orders"
        params = {"from": date_from, "to": date_to, "withDetails": "true", "pageSize": 100,
                  "formTypes": ["Event", "Membership"], "sortOrder": "Asc"}
        return paginate(self._fetcher(path), params, path)

    def payments(self, date_from: str, date_to: str) -> Iterator[dict[str, Any]]:
        path = f"/organizations/{self.organization_slug}/payments"
        params = {"from": date_from, "to": date_to, "pageSize": 100, "sortOrder": "Asc"}
        return paginate(self._fetcher(path), params, path)


# --- Staging a window of orders, items and payments -------------------------------------------------

ORDERS_TABLE, ITEMS_TABLE, PAYMENTS_TABLE = "helloasso_orders", "helloasso_items", "helloasso_payments"
OPTIONS_TABLE = "helloasso_item_options"
# Item options (priced extras on an item), one row per option of an item: HelloAsso gives options no id of their
# own (optionId names the option offered, shared by every order), so (item_id, option_index) is the key.
OPTIONS_DDL = """
    item_id bigint, option_index integer, order_id bigint, order_at timestamp, partition_date date,
    option_id bigint, name varchar, price_category varchar, is_required boolean, amount_cents bigint"""
DDL = {**{name: RAW_DDL[name] for name in (ORDERS_TABLE, ITEMS_TABLE, PAYMENTS_TABLE)}, OPTIONS_TABLE: OPTIONS_DDL}
SCHEMAS = {name: arrow_schema(ddl) for name, ddl in DDL.items()}
CHUNK_RECORDS = 5_000  # 50 pages of 100: what memory holds of the API's records at a time


@collector_paused()  # parsing pages allocates millions of objects: see ingest/collector.py
def stage_orders(records: Iterable[Any], orders_path: Path, items_path: Path, options_path: Path,
                 chunk_size: int = CHUNK_RECORDS,
                 email_labels: tuple[str, ...] = ITEM_EMAIL_LABELS) -> tuple[int, list[dict[str, Any]]]:
    """Orders (with details) into three Parquet files of raw rows (orders, items, item options), `chunk_size`
    records at a time; gives (records read, quarantined) exactly as `flatten_helloasso_order_details` over all
    the records would."""
    read, bad = 0, []
    tables = ((ORDERS_TABLE, orders_path), (ITEMS_TABLE, items_path), (OPTIONS_TABLE, options_path))
    writers = [pq.ParquetWriter(path, SCHEMAS[name]) for name, path in tables]
    try:
        for chunk in chunked(records, chunk_size):
            read += len(chunk)
            rows = flatten_helloasso_order_details(chunk, email_labels)
            del chunk
            bad += rows.bad
            for (name, _path), writer, table_rows in zip(tables, writers, (rows.orders, rows.items, rows.options),
                                                         strict=True):
                if table_rows:
                    writer.write_table(rows_to_arrow(table_rows, DDL[name], SCHEMAS[name]))
    finally:
        for writer in writers:
            writer.close()
    return read, bad


@collector_paused()
def stage_payments(records: Iterable[Any], path: Path,
                   chunk_size: int = CHUNK_RECORDS) -> tuple[int, list[dict[str, Any]]]:
    """Payments into a Parquet file of raw rows; (records read, quarantined) as `flatten_helloasso_payments`."""
    read, bad = 0, []
    with pq.ParquetWriter(path, SCHEMAS[PAYMENTS_TABLE]) as out:
        for chunk in chunked(records, chunk_size):
            read += len(chunk)
            payments, rejected = flatten_helloasso_payments(chunk)
            del chunk
            bad += rejected
            if payments:
                out.write_table(rows_to_arrow(payments, RAW_DDL[PAYMENTS_TABLE], SCHEMAS[PAYMENTS_TABLE]))
    return read, bad


@dataclass
class StagedWindow:
    """The staged files of a window [first_day, last_day] (Europe/Paris days, ISO)."""

    orders: Path
    items: Path
    options: Path
    payments: Path
    first_day: str
    last_day: str


def _in_window(path: Path) -> str:
    return f"select * from {parquet_source(path)} where partition_date between ?::date and ?::date"


@dataclass
class WindowSummary:
    outside: list[int]  # ids of the order records dated outside the asked window, one per record, ascending
    items_kept: int  # items of the orders kept
    last_order_at: Any  # latest order_at among the orders kept, or None
    payments_outside: list[int] = field(default_factory=list)  # the same for payment records
    options_kept: int = 0  # options of the items kept


def window_summary(staged: StagedWindow) -> WindowSummary:
    """What the window check decides, read from the staged files (an in-memory DuckDB, not the warehouse):
    a record (order, with its items, or payment) is kept when dated within the window. Every table is then
    replaced on the window's days only, so a re-run of the window leaves the same rows."""
    window = [staged.first_day, staged.last_day]
    with duckdb.connect(config={"threads": 1, "memory_limit": "1GB"}) as conn:
        def outside(path: Path, key: str) -> list[int]:
            return [r[0] for r in conn.execute(
                f"select {key} from {parquet_source(path)} where partition_date not between ?::date and ?::date "
                f"order by {key}", window).fetchall()]

        def kept(path: Path) -> int:
            return conn.execute(f"select count(*) from ({_in_window(path)})", window).fetchall()[0][0]

        last_order_at = conn.execute(f"select max(order_at) from ({_in_window(staged.orders)})", window).fetchall()[0][0]
        return WindowSummary(outside(staged.orders, "order_id"), kept(staged.items), last_order_at,
                             outside(staged.payments, "payment_id"), kept(staged.options))


def without_outside_fields(bad: list[dict[str, Any]], first_day: str, last_day: str) -> list[dict[str, Any]]:
    """The quarantine rows to keep once the records dated outside the window are quarantined whole: a field
    quarantine of a row that is not loaded would name a problem in a row nobody can find."""
    window = (dt.date.fromisoformat(first_day), dt.date.fromisoformat(last_day))
    return [b for b in bad if b.get("scope") != "field" or window[0] <= b["row_date"] <= window[1]]


def outside_window_quarantine(outside: list[int], source: str = "helloasso.orders") -> list[dict[str, Any]]:
    """Records outside the asked window are the provider's mistake: quarantined, kept out of these partitions
    (loading them would put rows in days this run does not own, and a re-run of the window would not replace them)."""
    return [{"source": source, "record_key": str(i), "reason": "outside_requested_window",
             "scope": "row", "payload": "{}"} for i in outside]


def load_staged(conn: duckdb.DuckDBPyConnection, schema: str, staged: StagedWindow) -> None:
    """Within the caller's transaction: replace the window's rows of the four raw tables by the staged
    rows: the orders, their items and the items' options, and the payments dated within the window."""
    window = [staged.first_day, staged.last_day]
    for name, select, params in (
        (ORDERS_TABLE, _in_window(staged.orders), window),
        (ITEMS_TABLE, _in_window(staged.items), window),
        (OPTIONS_TABLE, _in_window(staged.options), window),
        (PAYMENTS_TABLE, _in_window(staged.payments), window),
    ):
        table = f"{schema}.{name}"
        conn.execute(f"create table if not exists {table} ({DDL[name]})")
        conn.execute(f"delete from {table} where partition_date between ? and ?", window)
        conn.execute(f"insert into {table} by name {select}", params)


@dataclass
class MoneyBalance:
    """Orders of a window whose total is not the sum of their items and the items' options, in cents."""

    orders_checked: int
    unbalanced: list[tuple[int, int, int]]  # (order_id, total_cents, items + options cents), by order_id

    @property
    def passed(self) -> bool:
        return not self.unbalanced


def money_balance(conn: duckdb.DuckDBPyConnection, schema: str, first_day: str, last_day: str,
                  sample: int = 20) -> MoneyBalance:
    """For every order of the window [first_day, last_day]: amount.total = its items + their options. HelloAsso
    documents an item's amount as "after discount without extra options", so the two add up to the total, and a
    donation is an item of its own. A gap means money read and not stored (or a provider's inconsistency)."""
    window = [first_day, last_day]
    checked = conn.execute(f"select count(*) from {schema}.{ORDERS_TABLE} where partition_date between ? and ?",
                           window).fetchone()[0]
    unbalanced = conn.execute(f"""
        with items as (
            select order_id, sum(amount_cents) as cents from {schema}.{ITEMS_TABLE}
            where partition_date between ? and ? group by order_id
        ), options as (
            select order_id, sum(amount_cents) as cents from {schema}.{OPTIONS_TABLE}
            where partition_date between ? and ? group by order_id
        )
        select o.order_id, o.total_cents, coalesce(i.cents, 0) + coalesce(p.cents, 0) as parts
        from {schema}.{ORDERS_TABLE} o
        left join items i using (order_id) left join options p using (order_id)
        where o.partition_date between ? and ?
          and o.total_cents is distinct from coalesce(i.cents, 0) + coalesce(p.cents, 0)
        order by o.order_id limit ?""", window * 3 + [sample]).fetchall()
    return MoneyBalance(checked, [(int(a), b, int(c)) for a, b, c in unbalanced])
