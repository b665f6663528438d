"""The warehouse resource every writer and reader shares."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from alumni_orchestration import settings
from alumni_orchestration.warehouse import connect, ensure_raw_schema


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. Writers must run in the `duckdb_warehouse` pool (limit 1)."""

    path: str = Field(
        default_factory=lambda: str(settings.warehouse_path()),
        description="DuckDB file; defaults to $ALUMNI_HOME/warehouse.duckdb",
    )
    wait_seconds: float = Field(default=300.0, description="how long to wait for another writer to finish")

    def write(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return connect(self.path, read_only=False, wait_seconds=self.wait_seconds)

    def read(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return connect(self.path, read_only=True, wait_seconds=self.wait_seconds)

    @contextmanager
    def staging_dir(self, prefix: str) -> Iterator[Path]:
        """A temporary folder next to the warehouse, for files a load stages before one short write."""
        parent = Path(self.path).parent
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=prefix, dir=parent) as folder:
            yield Path(folder)

    def ensure_raw(self) -> None:
        with self.write() as conn:
            ensure_raw_schema(conn)
