"""A small association scored day by day, for the campaign tests: raw -> dbt -> model -> score history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
from tests.warehouse_fixture import build_raw_warehouse_from_files

PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"
HISTORY_FIRST_DAY = "2026-10-10"
WAVE_DAY = "2026-11-21"  # the score-history partition; the wave runs as of the next morning
WAVE_AS_OF = "2026-11-22"


def build_scored_association(root: Path, members: int = 1500, end_date: str = "2026-11-21") -> tuple[Path, Path, Path]:
    """Returns (association dir, warehouse file, model dir)."""
    association = root / "association"
    generate_association(association, GeneratorConfig(members=members, years=4, seed=5, end_date=end_date))
    warehouse = root / "warehouse.duckdb"
    build_raw_warehouse_from_files(association, warehouse)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "build", "--project-dir", str(PROJECT), "--profiles-dir",
         str(PROJECT), "--target-path", str(root / "target"), "--vars", json.dumps({"as_of": WAVE_AS_OF})],
        env={**os.environ, "ALUMNI_WAREHOUSE": str(warehouse)}, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    models = root / "models"
    resources = {"warehouse": WarehouseResource(path=str(warehouse)), "scoring": ScoringResource(model_dir=str(models))}
    assert dg.materialize([dues_propensity_model], resources=resources, tags={AS_OF_TAG: WAVE_AS_OF}).success
    assert dg.materialize([member_score_history], resources=resources, tags={
        "dagster/asset_partition_range_start": HISTORY_FIRST_DAY,
        "dagster/asset_partition_range_end": WAVE_DAY}).success
    assert dg.materialize([member_scores], resources=resources, tags={AS_OF_TAG: WAVE_AS_OF}).success
    return association, warehouse, models
