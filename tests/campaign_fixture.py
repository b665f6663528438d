"""A small association scored day by day, for the campaign tests: raw -> dbt -> model -> score history.

Two steps, so that a test run builds the warehouse once: `build_dbt_association` (generated association,
raw layer, `dbt build`; the dbt tests read it as it is) and `score_warehouse` (model and score history on a
copy of it; the campaign and recovery tests read that)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from alumni_orchestration.defs.scoring.assets import (
    dues_propensity_model,
    member_score_history,
    member_scores,
)
from alumni_orchestration.defs.scoring.resources import ScoringResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.partitions import AS_OF_TAG
from alumni_orchestration.synthetic.generator import GeneratorConfig, generate_association
from tests.warehouse_fixture import build_raw_warehouse_from_files, dbt_build

HISTORY_FIRST_DAY = "2026-10-10"
WAVE_DAY = "2026-11-21"  # the score-history partition; the wave runs as of the next morning
WAVE_AS_OF = "2026-11-22"


def build_dbt_association(root: Path, members: int = 1500, end_date: str = "2026-11-21") -> tuple[Path, Path, Path]:
    """Generated association -> raw layer -> `dbt build` as of WAVE_AS_OF. Returns (association dir, warehouse
    file, dbt target dir)."""
    association = root / "association"
    generate_association(association, GeneratorConfig(members=members, years=4, seed=5, end_date=end_date))
    warehouse = root / "warehouse.duckdb"
    build_raw_warehouse_from_files(association, warehouse)
    dbt_build(warehouse, root / "target", as_of=WAVE_AS_OF)
    return association, warehouse, root / "target"


def score_warehouse(built_warehouse: Path, root: Path) -> tuple[Path, Path]:
    """A copy of a dbt-built warehouse with the dues model trained and the score history written.
    Returns (warehouse file, model dir)."""
    root.mkdir(parents=True, exist_ok=True)
    warehouse = root / "warehouse.duckdb"
    shutil.copy(built_warehouse, warehouse)
    models = root / "models"
    resources = {"warehouse": WarehouseResource(path=str(warehouse)), "scoring": ScoringResource(model_dir=str(models))}
    assert dg.materialize([dues_propensity_model], resources=resources, tags={AS_OF_TAG: WAVE_AS_OF}).success
    assert dg.materialize([member_score_history], resources=resources, tags={
        "dagster/asset_partition_range_start": HISTORY_FIRST_DAY,
        "dagster/asset_partition_range_end": WAVE_DAY}).success
    assert dg.materialize([member_scores], resources=resources, tags={AS_OF_TAG: WAVE_AS_OF}).success
    return warehouse, models


def build_scored_association(root: Path, members: int = 1500, end_date: str = "2026-11-21") -> tuple[Path, Path, Path]:
    """Both steps at once. Returns (association dir, warehouse file, model dir)."""
    association, built, _ = build_dbt_association(root / "built", members, end_date)
    warehouse, models = score_warehouse(built, root / "scored")
    return association, warehouse, models
