"""Reading a mapped source: each chunk of source rows becomes the contract's text columns, plus the
errors of the values that the mapping could not read (each with its origin, row, column, value and rule).

The canonical text then goes through the same typing and validation as a canonical database
(ingest/membership.py), which quarantines a row whose key or required column failed, or the field.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from alumni_orchestration.contracts.membership import CONTRACT_TABLES, SMALL_INT, TIMESTAMP
from alumni_orchestration.mapping.spec import (
    WIDE_CELL,
    WIDE_KEY,
    ColumnRule,
    FileSource,
    MembershipMapping,
    TableMapping,
    TableSource,
    WideColumns,
)

SOURCE_ROW = "_source_row"
WIDE_STRIDE = 1000  # a wide table's rows: source row * 1000 + the cell's column
ERROR_COLUMNS = [SOURCE_ROW, "field", "rule", "value", "origin", "row", "fatal"]
SOURCE_ROW_EXPRESSION = {"sqlite": "rowid", "postgresql": "ctid"}
_ISO_CELL = re.compile(r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?")


class MappingFailure(Exception):
    def __init__(self, rule: str, value: str) -> None:
        super().__init__(rule)
        self.rule = rule
        self.value = value


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value)
    return text if text.strip() else None


def _base(rule: ColumnRule, record: dict[str, object]) -> str | None:
    if rule.constant is not None:
        return rule.constant
    if rule.column is not None:
        return _text(record.get(rule.column))
    parts = [_text(record.get(p["column"])) if isinstance(p, dict) else p for p in rule.concat or ()]
    columns = [p for p, spec in zip(parts, rule.concat or (), strict=True) if isinstance(spec, dict)]
    if all(p is None for p in columns):
        return None
    return "".join(p or "" for p in parts)


def evaluate(rule: ColumnRule, record: dict[str, object], date_cells: bool = False) -> str | None:
    """The contract text of one column for one source record; MappingFailure names the rule that failed.

    `date_cells`: the source is a spreadsheet whose real date cells were read as ISO text (see _cell)."""
    value = _base(rule, record)
    if value is None:
        return None
    original = value
    if rule.regex is not None:
        match = re.search(rule.regex, value)
        if match is None:
            raise MappingFailure("regex", original)
        if match.group(1) is None:  # the pattern matched, and its optional part is absent: no value
            return None
        value = match.group(1)
    if rule.values is not None:
        value = _vocabulary(rule.values, value, original)
    if rule.date is not None:
        value = _date(rule, value.strip(), original, date_cells)
    if rule.boolean is not None:
        value = _boolean(rule.boolean, value, original)
    if rule.decimal == ",":
        value = value.replace("\u00a0", "").replace("\u202f", "").replace(" ", "").replace("€", "").replace(",", ".")
    return value


def _vocabulary(vocabulary: dict[str, str], value: str, original: str) -> str:
    if value in vocabulary:
        return vocabulary[value]
    folded = {label.strip().casefold(): target for label, target in vocabulary.items()}
    if (target := folded.get(value.strip().casefold())) is not None:
        return target
    raise MappingFailure("vocabulary", original)


def _date(rule: ColumnRule, value: str, original: str, date_cells: bool) -> str:
    try:
        parsed = datetime.strptime(value, rule.date or "")
    except ValueError:
        parsed = _iso_cell(value) if date_cells else None
    if parsed is None:
        raise MappingFailure("date_format", original)
    if rule.kind == SMALL_INT:
        return str(parsed.year)
    return parsed.strftime("%Y-%m-%d %H:%M:%S") if rule.kind == TIMESTAMP else parsed.strftime("%Y-%m-%d")


def _iso_cell(value: str) -> datetime | None:
    """A spreadsheet's real date cell, read as ISO text by _cell: a date whatever the declared format."""
    if not _ISO_CELL.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _boolean(labels: tuple[tuple[str, ...], tuple[str, ...]], value: str, original: str) -> str:
    folded = value.strip().casefold()
    if folded in {label.casefold() for label in labels[0]}:
        return "1"
    if folded in {label.casefold() for label in labels[1]}:
        return "0"
    raise MappingFailure("boolean", original)


def map_chunk(mapping: TableMapping, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Source rows (with `_source_row` and the row's place for people, `_row`) to contract text, and errors."""
    contract = [c.name for c in CONTRACT_TABLES[mapping.target].columns]
    date_cells = isinstance(mapping.source, FileSource) and mapping.source.path.suffix.lower() == ".xlsx"
    out: list[list[str | None]] = []
    errors: list[list[object]] = []
    for record in rows.to_dict("records"):
        mapped = [str(record[SOURCE_ROW])]
        for name in contract:
            rule = mapping.columns.get(name)
            value = None
            if rule is not None:
                try:
                    value = evaluate(rule, record, date_cells)
                except MappingFailure as failure:
                    errors.append([str(record[SOURCE_ROW]), name, failure.rule, failure.value,
                                   mapping.source.origin, str(record["_row"]), name in mapping.fatal])
            mapped.append(value)
        out.append(mapped)
    return (pd.DataFrame(out, columns=[SOURCE_ROW, *contract], dtype=object),
            pd.DataFrame(errors, columns=ERROR_COLUMNS, dtype=object))


def _source_order(source_row: str) -> int:
    """A number from `_source_row` (a ctid '(block,offset)' as ingest/membership.py orders it)."""
    if source_row.startswith("("):
        block, offset = source_row.strip("()").split(",")
        return int(block) * 65536 + int(offset)
    return int(source_row)


def widen(wide: WideColumns, rows: pd.DataFrame) -> pd.DataFrame:
    """One row per non-empty cell of the wide columns, with the cell's text and the key its column gives.

    Each keeps its source row (`_row`, for people); `_source_row` numbers the cells of a row apart."""
    out = []
    for record in rows.to_dict("records"):
        order = _source_order(str(record[SOURCE_ROW]))
        for n, (column, key) in enumerate(wide.columns.items()):
            cell = _text(record.get(column))
            if cell is not None:
                out.append(record | {SOURCE_ROW: str(order * WIDE_STRIDE + n), WIDE_CELL: cell, WIDE_KEY: key})
    return pd.DataFrame(out, columns=[*rows.columns, WIDE_CELL, WIDE_KEY], dtype=object)


def _check_columns(mapping: TableMapping, header: list[str]) -> None:
    wide = set(mapping.wide.columns) if mapping.wide else set()
    missing = sorted(({c for rule in mapping.columns.values() for c in rule.source_columns()} | wide) - set(header))
    if missing:
        raise KeyError(f"{mapping.source.origin}: the mapping of {mapping.target} reads columns that the source "
                       f"does not have: {missing} (its columns: {header})")


def _file_chunks(source: FileSource, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """A file's rows as text; `_row` is the spreadsheet row (the header is row 1)."""
    if source.path.suffix.lower() == ".xlsx":
        sheet = pd.read_excel(source.path, sheet_name=source.sheet or 0, dtype=object, keep_default_na=False)
        frames = [sheet.map(_cell)]
    else:
        # Excel and HelloAsso write UTF-8 with a byte-order mark, which would otherwise stick to the first column.
        encoding = "utf-8-sig" if codecs.lookup(source.encoding).name == "utf-8" else source.encoding
        frames = pd.read_csv(source.path, sep=source.separator, encoding=encoding, dtype=str,
                             keep_default_na=False, chunksize=chunk_rows)
    start = 0
    for frame in frames:
        frame = frame.astype(object)
        rows = [str(start + n + 2) for n in range(len(frame))]
        frame.insert(0, "_row", rows)
        frame.insert(0, SOURCE_ROW, rows)
        start += len(frame)
        yield frame


def _cell(value: object) -> str:
    """An XLSX cell as text: a whole number without its '.0', a date as ISO (a date rule reads it as such)."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") if value.time() != datetime.min.time() else value.strftime("%Y-%m-%d")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _table_chunks(engine: sa.Engine, source: TableSource, chunk_rows: int) -> Iterator[pd.DataFrame]:
    row_identity = SOURCE_ROW_EXPRESSION.get(engine.dialect.name)
    selected = f"{row_identity} as {SOURCE_ROW}, *" if row_identity else "*"
    query = sa.text(f'select {selected} from "{source.table}"')
    read = 0
    with engine.connect().execution_options(stream_results=True, yield_per=chunk_rows) as conn:
        result = conn.execute(query)
        names = list(result.keys())
        while batch := result.fetchmany(chunk_rows):
            frame = pd.DataFrame([[None if v is None else str(v) for v in row] for row in batch],
                                 columns=names, dtype=object)
            if not row_identity:
                frame.insert(0, SOURCE_ROW, [str(read + n + 1) for n in range(len(frame))])
            frame.insert(1, "_row", frame[SOURCE_ROW])
            read += len(frame)
            yield frame


def read_mapped(mapping: MembershipMapping, engine: sa.Engine | None, table: str,
                chunk_rows: int) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Chunks of one contract table through the mapping; nothing when the mapping leaves the table out."""
    table_mapping = mapping.tables.get(table)
    if table_mapping is None:
        return
    source = table_mapping.source
    if isinstance(source, FileSource):
        chunks = _file_chunks(source, chunk_rows)
    else:
        if engine is None:
            raise ValueError(f"the mapping of {table} reads table {source.table!r}: set MEMBERSHIP_DATABASE_URL")
        chunks = _table_chunks(engine, source, chunk_rows)
    for n, chunk in enumerate(chunks):
        if n == 0:
            _check_columns(table_mapping, [c for c in chunk.columns if c not in (SOURCE_ROW, "_row")])
        if table_mapping.wide is not None:
            chunk = widen(table_mapping.wide, chunk)
        yield map_chunk(table_mapping, chunk)
