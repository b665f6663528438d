"""The code location loads and validates as the CLI sees it; the dbt window follows the partitions."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from alumni_orchestration.defs.dbt.assets import partition_vars

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_dagster_definitions_validate_passes() -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Validation successful" in result.stderr + result.stdout


def test_partition_window_becomes_inclusive_dbt_dates_across_dst() -> None:
    paris = ZoneInfo("Europe/Paris")
    window = dg.TimeWindow(dt.datetime(2026, 3, 23, tzinfo=paris), dt.datetime(2026, 3, 30, tzinfo=paris))
    assert partition_vars(window) == {"min_date": "2026-03-23", "max_date": "2026-03-29"}


def test_every_warehouse_writer_is_in_the_single_writer_pool() -> None:
    from alumni_orchestration.definitions import defs
    from alumni_orchestration.warehouse import WAREHOUSE_POOL

    definitions = defs()
    writers = [a for a in definitions.assets if isinstance(a, dg.AssetsDefinition)]
    assert writers
    for asset in writers:
        pools = {asset.op.pool}
        assert pools == {WAREHOUSE_POOL}, asset.keys
    groups = {a.specs_by_key[k].group_name for a in writers for k in a.keys}
    assert {"sources", "staging", "intermediate", "marts"} <= groups
