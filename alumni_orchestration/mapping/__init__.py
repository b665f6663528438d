"""Bring your own association: a reviewed mapping from the association's tables or files to the contract.

When ALUMNI_MEMBERSHIP_MAPPING names a `membership_mapping.yaml`, the nightly membership load reads
through it; when it is unset, the membership database is already canonical (contracts/membership.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from alumni_orchestration.mapping.read import read_mapped
from alumni_orchestration.mapping.spec import MappingSpecError, MembershipMapping, load_mapping

MAPPING_ENV = "ALUMNI_MEMBERSHIP_MAPPING"

__all__ = ["MAPPING_ENV", "MappingSpecError", "MembershipMapping", "configured_mapping", "load_mapping",
           "mapping_reader"]


def configured_mapping(env: Mapping[str, str] | None = None) -> MembershipMapping | None:
    """The mapping named by ALUMNI_MEMBERSHIP_MAPPING, validated; None when the source is canonical."""
    path = (os.environ if env is None else env).get(MAPPING_ENV, "").strip()
    return load_mapping(Path(path)) if path else None


def mapping_reader(mapping: MembershipMapping, engine: sa.Engine | None
                   ) -> Callable[[str, int], Iterator[tuple[pd.DataFrame, pd.DataFrame]]]:
    """A table reader for the membership load (ingest/membership.py) that reads through the mapping."""
    def read(table: str, chunk_rows: int) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        return read_mapped(mapping, engine, table, chunk_rows)
    return read
