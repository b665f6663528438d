"""The dbt project as Dagster assets: the daily activity mart by partition window, the rest whole.

The daily mart receives its partition window as `--vars {min_date, max_date}` and rebuilds only
those days (single-run backfills); every other model is rebuilt from it and the sources.
"""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.lib.dbt_translator import AlumniDbtTranslator
from alumni_orchestration.partitions import daily_partitions, run_as_of
from alumni_orchestration.warehouse import WAREHOUSE_POOL

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"
DAILY_MODELS = "member_activity_daily"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def _project_files_newest_mtime() -> float:
    files = [*DBT_PROJECT_DIR.glob("*.yml"), *DBT_PROJECT_DIR.glob("models/**/*"), *DBT_PROJECT_DIR.glob("macros/**/*")]
    return max((f.stat().st_mtime for f in files if f.is_file()), default=0.0)


def ensure_manifest() -> Path:
    """Parse the project when its manifest is missing or older than its files, so every entry point
    (UI, daemon, demo, tests) loads the models and tests as they are now."""
    manifest = dbt_project.manifest_path
    if not manifest.exists() or manifest.stat().st_mtime < _project_files_newest_mtime():
        subprocess.run(
            [str(Path(sys.executable).parent / "dbt"), "parse", "--project-dir", str(DBT_PROJECT_DIR),
             "--profiles-dir", str(DBT_PROJECT_DIR), "--quiet"],
            check=True,
        )
    return manifest


def point_dbt_at(warehouse: WarehouseResource) -> None:
    """dbt runs as a subprocess of this step; its profile reads the warehouse path from the environment."""
    os.environ["ALUMNI_WAREHOUSE"] = str(Path(warehouse.path).resolve())


def run_vars(context: dg.AssetExecutionContext) -> dict[str, str]:
    """The day the marts are computed as of, the same day the scores use."""
    return {"as_of": run_as_of(context).isoformat()}


def partition_vars(window: dg.TimeWindow) -> dict[str, str]:
    """The partition window (end exclusive) as the inclusive dates the daily model filters on."""
    last = (window.end - dt.timedelta(seconds=1)).date()
    return {"min_date": window.start.date().isoformat(), "max_date": last.isoformat()}


@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    dagster_dbt_translator=AlumniDbtTranslator(),
    exclude=DAILY_MODELS,
    pool=WAREHOUSE_POOL,
    name="dbt_models",
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    point_dbt_at(warehouse)
    yield from dbt.cli(["build", "--vars", json.dumps(run_vars(context))], context=context).stream()


@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    dagster_dbt_translator=AlumniDbtTranslator(),
    select=DAILY_MODELS,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    name="dbt_daily_models",
)
def dbt_daily_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    point_dbt_at(warehouse)
    dbt_vars = partition_vars(context.partition_time_window)
    context.log.info(f"dbt build of {DAILY_MODELS} for {dbt_vars['min_date']} .. {dbt_vars['max_date']}")
    yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()
