"""Exports the team can open: each list as CSV (UTF-8 with BOM, `;`, as French Excel expects) and XLSX.

Exports are personal data: they are written to $ALUMNI_HOME/exports/<date>/ only, and nothing about
their content goes to logs or metadata (callers report paths and counts).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from alumni_orchestration import settings

CSV_ENCODING, CSV_SEPARATOR = "utf-8-sig", ";"
MAX_COLUMN_WIDTH = 60


def exports_dir(day: dt.date, home: Path | None = None) -> Path:
    return (home or settings.alumni_home()) / "exports" / day.isoformat()


def _cell(value):
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if hasattr(value, "item") else value


def write_xlsx(frame: pd.DataFrame, path: Path, sheet: str) -> None:
    """A header row in bold, frozen under the header, columns as wide as their longest value."""
    book = Workbook()
    ws = book.active
    ws.title = sheet[:31]
    ws.append([str(c) for c in frame.columns])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in frame.itertuples(index=False):
        ws.append([_cell(v) for v in row])
    ws.freeze_panes = "A2"
    for position, column in enumerate(frame.columns, start=1):
        longest = max([len(str(column)), *(len(str(v)) for v in frame[column].head(2000) if _cell(v) is not None)])
        ws.column_dimensions[get_column_letter(position)].width = min(longest + 2, MAX_COLUMN_WIDTH)
    book.save(path)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, sep=CSV_SEPARATOR, encoding=CSV_ENCODING, index=False, decimal=",")


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep=CSV_SEPARATOR, encoding=CSV_ENCODING, decimal=",")


def export_list(frame: pd.DataFrame, folder: Path, name: str) -> list[Path]:
    """Writes <folder>/<name>.csv and .xlsx; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, xlsx_path = folder / f"{name}.csv", folder / f"{name}.xlsx"
    write_csv(frame, csv_path)
    write_xlsx(frame, xlsx_path, name)
    return [csv_path, xlsx_path]


def select(frame: pd.DataFrame, segment: str | None = None, topic: str | None = None) -> pd.DataFrame:
    """The rows of one segment and/or topic (a list without a topic column ignores --topic only if unset)."""
    if segment:
        frame = frame[frame.segment == segment]
    if topic:
        if "topic" not in frame.columns:
            raise ValueError("--topic applies to interest_audiences only")
        frame = frame[frame.topic == topic]
    return frame


def export_file_name(name: str, segment: str | None, topic: str | None) -> str:
    return "-".join([name, *(part for part in (segment, topic) if part)])


def read_list(name: str, warehouse: Path | None = None) -> pd.DataFrame:
    from alumni_orchestration.warehouse import connect

    with connect(warehouse or settings.warehouse_path(), read_only=True) as conn:
        return conn.execute(f"select * from workbench.{name}").df()


def export_on_demand(name: str, segment: str | None = None, topic: str | None = None,
                     day: dt.date | None = None, home: Path | None = None) -> tuple[list[Path], int]:
    """`alumni export LIST`: one list (optionally one segment / topic) from the warehouse to today's export
    folder. Returns the paths written and the row count."""
    from alumni_orchestration.workbench.lists import LISTS

    if name not in LISTS:
        raise ValueError(f"unknown list {name!r}; choose one of {', '.join(LISTS)}")
    frame = select(read_list(name), segment, topic)
    folder = exports_dir(day or dt.date.today(), home)
    return export_list(frame, folder, export_file_name(name, segment, topic)), len(frame)
