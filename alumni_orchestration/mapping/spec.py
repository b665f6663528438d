"""A membership mapping: how an association's own tables or files become the canonical contract.

Declared in a reviewed YAML file (`membership_mapping.yaml`), validated before anything is read:
every error names where it is in the file (`tables.members.columns.status.values`) and what is wrong.

    tables:
      members:
        source: {file: adherents.csv, encoding: cp1252, separator: ";"}   # or {table: adherents}
        columns:
          member_id: "N° adhérent"                        # a source column, as is
          status: {column: Statut, values: {Actif: active, Radié: left}}
          birth_date: {column: Naissance, date: "%d/%m/%Y"}
          consent_email: {column: Newsletter, boolean: {true: [Oui], false: [Non]}}
          graduation_year: {column: Promo, regex: "(\\d{4})"}
          programme: {constant: MBA}
          declared_interests: {concat: [{column: Intérêt 1}, ";", {column: Intérêt 2}]}
          amount_eur: {column: Montant, decimal: ","}

`columns: same` reads an already canonical table (every contract column under its own name). A contract
table left out of the mapping is loaded empty: the association does not keep that data.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from alumni_orchestration.contracts.membership import (
    CONTRACT_TABLES,
    DATE,
    SMALL_INT,
    TIMESTAMP,
    ContractTable,
)

FILE_SUFFIXES = (".csv", ".xlsx")
SEPARATORS = (";", ",")
_RULE_KEYS = {"column", "constant", "concat", "regex", "values", "date", "boolean", "decimal"}
_VALUE_KEYS = ("column", "constant", "concat")
_DATE_PROBE = datetime(2024, 12, 31, 23, 59, 58)
WIDE_CELL = "_cell"  # in a wide table's rules, the text of the listed column's cell
WIDE_KEY = "_wide_key"  # the value that the listed column gives the table's `key` column


class MappingSpecError(ValueError):
    """The mapping file is not valid; `errors` lists every problem, each with its place in the file."""

    def __init__(self, path: Path | str, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(f"{path}: invalid membership mapping:\n" + "\n".join(f"  - {e}" for e in errors))


@dataclass(frozen=True)
class FileSource:
    path: Path
    encoding: str = "utf-8"
    separator: str = ","
    sheet: str | None = None  # XLSX only; the first sheet by default

    @property
    def origin(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class TableSource:
    table: str  # a table of MEMBERSHIP_DATABASE_URL

    @property
    def origin(self) -> str:
        return f"table {self.table}"


@dataclass(frozen=True)
class ColumnRule:
    """One contract column: a value (a source column, a constant or a concatenation), then its transforms."""

    target: str
    column: str | None = None
    constant: str | None = None
    concat: tuple[str | dict[str, str], ...] | None = None  # literals, and {column: name}
    regex: str | None = None  # the first capture group is kept
    values: dict[str, str] | None = None  # a vocabulary: source label -> contract value
    date: str | None = None  # a strptime format
    boolean: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # (true labels, false labels)
    decimal: str | None = None  # the decimal mark of amounts, e.g. ","
    kind: str = ""  # the contract column's kind, which says how a parsed date is written

    def source_columns(self) -> list[str]:
        """The columns read from the source itself (not a wide table's cell or key)."""
        names = [self.column] if self.column is not None else [
            part["column"] for part in self.concat or () if isinstance(part, dict)]
        return [n for n in names if n not in (WIDE_CELL, WIDE_KEY)]


@dataclass(frozen=True)
class WideColumns:
    """Data kept as one column per group (or per assembly): each non-empty cell becomes a row of the table."""

    columns: dict[str, str]  # source column -> the value it gives `key` (a group_id, an assembly_id)
    key: str  # the contract column that takes that value


@dataclass(frozen=True)
class TableMapping:
    target: str
    source: FileSource | TableSource
    columns: dict[str, ColumnRule]
    fatal: frozenset[str] = field(default_factory=frozenset)  # key and required columns: an error rejects the row
    wide: WideColumns | None = None


@dataclass(frozen=True)
class MembershipMapping:
    path: Path
    tables: dict[str, TableMapping]

    @property
    def reads_database(self) -> bool:
        return any(isinstance(t.source, TableSource) for t in self.tables.values())


def load_mapping(path: Path | str) -> MembershipMapping:
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MappingSpecError(path, [f"not valid YAML: {exc}"]) from None
    return parse_mapping(document, path)


def parse_mapping(document: Any, path: Path) -> MembershipMapping:
    errors: list[str] = []
    tables = document.get("tables") if isinstance(document, dict) else None
    if not isinstance(tables, dict) or not tables:
        raise MappingSpecError(path, ["tables: expected a mapping of contract tables (members, dues_payments, ...)"])
    parsed = {}
    for name, table_doc in tables.items():
        if name not in CONTRACT_TABLES:
            errors.append(f"tables.{name}: unknown contract table (expected one of {', '.join(CONTRACT_TABLES)})")
            continue
        mapping = _table(CONTRACT_TABLES[name], table_doc, path.parent, errors)
        if mapping is not None:
            parsed[name] = mapping
    if errors:
        raise MappingSpecError(path, errors)
    return MembershipMapping(path=path, tables=parsed)


def _table(contract: ContractTable, doc: Any, base: Path, errors: list[str]) -> TableMapping | None:
    where = f"tables.{contract.name}"
    if not isinstance(doc, dict):
        errors.append(f"{where}: expected 'source' and 'columns'")
        return None
    source = _source(doc.get("source"), base, f"{where}.source", errors)
    columns_doc = doc.get("columns")
    if columns_doc == "same":  # an already canonical table: every contract column under its own name
        columns_doc = {c.name: c.name for c in contract.columns}
    if not isinstance(columns_doc, dict):
        errors.append(f"{where}.columns: expected a mapping of contract columns to source columns or rules")
        return None
    known = {c.name for c in contract.columns}
    wide = _wide(doc["wide"], known, set(columns_doc), f"{where}.wide", errors) if "wide" in doc else None
    unknown_keys = set(doc) - {"source", "columns", "wide"}
    if unknown_keys:
        errors.append(f"{where}: unknown keys {sorted(unknown_keys)} (a table has source, columns, wide)")
    columns = {}
    for target, rule_doc in columns_doc.items():
        if target not in known:
            errors.append(f"{where}.columns.{target}: unknown contract column "
                          f"(the columns of {contract.name}: {', '.join(c.name for c in contract.columns)})")
            continue
        rule = _rule(contract, target, rule_doc, f"{where}.columns.{target}", errors)
        if rule is not None:
            columns[target] = rule
    fatal = {c.name for c in contract.columns if c.key or c.required}
    for name in sorted(fatal - set(columns_doc) - ({wide.key} if wide else set())):
        errors.append(f"{where}.columns.{name}: missing required column (a row of {contract.name} cannot do without it)")
    if source is None:
        return None
    if wide is not None:  # the key is a constant per listed column
        columns[wide.key] = ColumnRule(wide.key, column=WIDE_KEY, kind=contract.column(wide.key).kind)
    return TableMapping(contract.name, source, columns, frozenset(fatal), wide)



def _wide(doc: Any, known: set[str], mapped: set[str], where: str, errors: list[str]) -> WideColumns | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("columns"), dict) or not doc["columns"] or "key" not in doc:
        errors.append(f"{where}: expected {{key: <contract column>, columns: {{<source column>: <its value>}}}}")
        return None
    key = str(doc["key"])
    if key not in known:
        errors.append(f"{where}.key: unknown contract column {key!r}")
        return None
    if key in mapped:
        errors.append(f"{where}.key: {key} is given by the wide columns, not by a rule in columns")
    return WideColumns({str(c): str(v) for c, v in doc["columns"].items()}, key)


def _source(doc: Any, base: Path, where: str, errors: list[str]) -> FileSource | TableSource | None:
    if not isinstance(doc, dict) or ("file" in doc) == ("table" in doc):
        errors.append(f"{where}: expected either 'file' (a CSV or XLSX file) or 'table' (a table of MEMBERSHIP_DATABASE_URL)")
        return None
    if "table" in doc:
        unknown = set(doc) - {"table"}
        if unknown:
            errors.append(f"{where}: unknown keys {sorted(unknown)} for a database table")
        return TableSource(str(doc["table"]))
    unknown = set(doc) - {"file", "encoding", "separator", "sheet"}
    if unknown:
        errors.append(f"{where}: unknown keys {sorted(unknown)} (expected file, encoding, separator, sheet)")
    file = Path(str(doc["file"]))
    file = file if file.is_absolute() else base / file
    if file.suffix.lower() not in FILE_SUFFIXES:
        errors.append(f"{where}.file: {file.name!r} is neither a .csv nor a .xlsx file")
    encoding = str(doc.get("encoding", "utf-8"))
    try:
        codecs.lookup(encoding)
    except LookupError:
        errors.append(f"{where}.encoding: unknown encoding {encoding!r} (e.g. utf-8, cp1252)")
    separator = str(doc.get("separator", ","))
    if separator not in SEPARATORS:
        errors.append(f"{where}.separator: {separator!r} is not one of {' '.join(SEPARATORS)}")
    sheet = doc.get("sheet")
    return FileSource(file, encoding, separator, None if sheet is None else str(sheet))


def _rule(contract: ContractTable, target: str, doc: Any, where: str, errors: list[str]) -> ColumnRule | None:
    if isinstance(doc, str):
        doc = {"column": doc}
    if not isinstance(doc, dict):
        errors.append(f"{where}: expected a source column name or a rule ({', '.join(sorted(_RULE_KEYS))})")
        return None
    before = len(errors)
    unknown = set(doc) - _RULE_KEYS
    if unknown:
        errors.append(f"{where}: unknown keys {sorted(unknown)} (a rule has {', '.join(sorted(_RULE_KEYS))})")
    given = [k for k in _VALUE_KEYS if k in doc]
    if len(given) != 1:
        errors.append(f"{where}: expected exactly one of column, constant, concat (got {given or 'none'})")
    column = contract.column(target)
    concat = _concat(doc.get("concat"), f"{where}.concat", errors) if "concat" in doc else None
    regex = _regex(doc.get("regex"), f"{where}.regex", errors) if "regex" in doc else None
    values = _values(doc.get("values"), column.allowed, f"{where}.values", errors) if "values" in doc else None
    date = _date_format(doc.get("date"), column.kind, f"{where}.date", errors) if "date" in doc else None
    boolean = _boolean(doc.get("boolean"), f"{where}.boolean", errors) if "boolean" in doc else None
    decimal = doc.get("decimal")
    if decimal is not None and decimal not in (",", "."):
        errors.append(f"{where}.decimal: expected ',' or '.' (got {decimal!r})")
    if len(errors) > before:
        return None
    return ColumnRule(target, column=None if doc.get("column") is None else str(doc["column"]),
                      constant=None if doc.get("constant") is None else str(doc["constant"]),
                      concat=concat, regex=regex, values=values, date=date, boolean=boolean, decimal=decimal,
                      kind=column.kind)


def _concat(doc: Any, where: str, errors: list[str]) -> tuple | None:
    if not isinstance(doc, list) or not doc:
        errors.append(f"{where}: expected a list of literals and {{column: name}}")
        return None
    parts = []
    for n, part in enumerate(doc):
        if isinstance(part, dict) and set(part) == {"column"}:
            parts.append({"column": str(part["column"])})
        elif isinstance(part, (str, int)):
            parts.append(str(part))
        else:
            errors.append(f"{where}[{n}]: expected a literal or {{column: name}} (got {part!r})")
    return tuple(parts)


def _regex(pattern: Any, where: str, errors: list[str]) -> str | None:
    try:
        compiled = re.compile(str(pattern))
    except re.error as exc:
        errors.append(f"{where}: not a regular expression ({exc})")
        return None
    if compiled.groups != 1:
        errors.append(f"{where}: expected exactly one capture group, the part kept (got {compiled.groups})")
        return None
    return str(pattern)


def _values(doc: Any, allowed: tuple[str, ...] | None, where: str, errors: list[str]) -> dict[str, str] | None:
    if not isinstance(doc, dict) or not doc:
        errors.append(f"{where}: expected a vocabulary, source label: contract value")
        return None
    vocabulary = {str(label): str(value) for label, value in doc.items()}
    if allowed:
        for label, value in vocabulary.items():
            if value not in allowed:
                errors.append(f"{where}.{label}: {value!r} is not an allowed value (allowed: {', '.join(allowed)})")
    return vocabulary


def _date_format(fmt: Any, kind: str, where: str, errors: list[str]) -> str | None:
    if kind not in (DATE, TIMESTAMP, SMALL_INT):
        errors.append(f"{where}: a date format on a column that is not a date ({kind})")
        return None
    fmt = str(fmt)
    try:
        ok = "%" in fmt and datetime.strptime(_DATE_PROBE.strftime(fmt), fmt).date() == _DATE_PROBE.date()
    except ValueError:
        ok = False
    if not ok:
        errors.append(f"{where}: {fmt!r} is not a date format that reads back a full date (e.g. %d/%m/%Y)")
        return None
    return fmt


def _boolean(doc: Any, where: str, errors: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    # YAML reads the keys `true`/`false` as booleans, and `Oui`/`Non` stay text.
    if not isinstance(doc, dict) or set(doc) != {True, False}:
        errors.append(f"{where}: expected {{true: [labels], false: [labels]}}")
        return None

    def labels(value: Any) -> tuple[str, ...]:
        return tuple(str(v) for v in (value if isinstance(value, list) else [value]))

    return labels(doc[True]), labels(doc[False])
