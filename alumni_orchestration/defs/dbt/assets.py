"""The dbt project as Dagster assets: the daily activity mart by partition window, the rest whole.

The daily mart receives its partition window as `--vars {min_date, max_date}` and rebuilds only
those days (single-run backfills); every other model is rebuilt from it and the sources, except the
incremental int_email_interactions_filtered, which rebuilds the SendGrid days whose raw data changed.

A run makes up to three dbt invocations (the unpartitioned models are split around the daily mart,
which is upstream of member_engagement). All of them get the same vars (the run's as_of and
partition window), so only the first parses the project: it leaves its partial-parse file under
target/parse_cache/<hash of the vars>.msgpack and the others start from it. dbt cannot partially
parse across different --vars (dbt-core#6323), and the vars change every night.
"""

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.lib.dbt_cli import environment_dbt
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
        # Parsed into a private folder, then moved into place whole: another process loading the definitions
        # meanwhile (a second test worker, the daemon) sees the old manifest or the new one, never half of one.
        manifest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=manifest.parent, prefix=".parse-") as private:
            subprocess.run(
                [environment_dbt(), "parse", "--project-dir", str(DBT_PROJECT_DIR),
                 "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", private, "--quiet"],
                check=True,
            )
            for artefact in ("partial_parse.msgpack", "semantic_manifest.json", manifest.name):
                if (Path(private) / artefact).exists():
                    os.replace(Path(private) / artefact, manifest.parent / artefact)
    return manifest


@contextmanager
def dbt_pointed_at(warehouse: WarehouseResource) -> Iterator[None]:
    """dbt runs as a subprocess of this step and its profile reads the warehouse path from the
    environment: set it for the step, then put it back, so that an in-process run (a test, the demo)
    does not leave the next one pointed at this warehouse."""
    previous = os.environ.get("ALUMNI_WAREHOUSE")
    os.environ["ALUMNI_WAREHOUSE"] = str(Path(warehouse.path).resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("ALUMNI_WAREHOUSE", None)
        else:
            os.environ["ALUMNI_WAREHOUSE"] = previous


def run_vars(context: dg.AssetExecutionContext) -> dict[str, str]:
    """The day the marts are computed as of, the same day the scores use, and the run's partition
    window when it has one. Every dbt invocation of a run gets exactly these vars: the daily mart
    filters on the window, and equal vars let the invocations share one parse."""
    dbt_vars = {"as_of": run_as_of(context).isoformat()}
    tags = context.run.tags
    first = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    last = tags.get("dagster/asset_partition_range_end") or tags.get("dagster/partition")
    if first and last and _is_day(first) and _is_day(last):
        dbt_vars |= {"min_date": first, "max_date": last}
    return dbt_vars


def _is_day(key: str) -> bool:
    try:
        dt.date.fromisoformat(key)
    except ValueError:
        return False
    return len(key) == 10


def partition_vars(window: dg.TimeWindow) -> dict[str, str]:
    """The partition window (end exclusive) as the inclusive dates the daily model filters on."""
    last = (window.end - dt.timedelta(seconds=1)).date()
    return {"min_date": window.start.date().isoformat(), "max_date": last.isoformat()}


PARSE_CACHE_DIR = DBT_PROJECT_DIR / "target" / "parse_cache"
PARSE_CACHE_KEEP = 8


def parse_cache_file(dbt_vars: dict[str, str]) -> Path:
    """Where the partial-parse file of a parse with these vars is kept (dbt re-checks the files itself)."""
    digest = hashlib.sha256(json.dumps(dbt_vars, sort_keys=True).encode()).hexdigest()[:16]
    return PARSE_CACHE_DIR / f"{digest}.msgpack"


def _keep_parse(produced: Path, cached: Path) -> None:
    if not produced.exists():
        return
    cached.parent.mkdir(parents=True, exist_ok=True)
    staging = cached.with_name(f".{cached.name}.{uuid.uuid4().hex}")
    shutil.copyfile(produced, staging)
    os.replace(staging, cached)  # atomic: a concurrent reader sees the old file or the new one
    older = sorted(PARSE_CACHE_DIR.glob("*.msgpack"), key=lambda f: f.stat().st_mtime, reverse=True)
    for stale in older[PARSE_CACHE_KEEP:]:
        stale.unlink(missing_ok=True)


def dbt_build(context: dg.AssetExecutionContext, dbt: DbtCliResource, dbt_vars: dict[str, str]):
    """`dbt build --vars ...` for this step's selection, starting from the partial parse of an earlier
    invocation with the same vars when there is one, and leaving its own for the next."""
    unique = f"{context.op_execution_context.op.name}-{context.run.run_id[:7]}-{uuid.uuid4().hex[:7]}"
    target = DBT_PROJECT_DIR / "target" / unique  # the path dagster-dbt would choose
    cached = parse_cache_file(dbt_vars)
    target.mkdir(parents=True, exist_ok=True)
    if cached.exists():  # dagster-dbt copies target/partial_parse.msgpack only where there is none
        shutil.copyfile(cached, target / "partial_parse.msgpack")
    # Unit tests check the SQL on fixed inputs: CI runs them (tests/test_dbt_project.py), a nightly run need not
    # (dbt's own advice). Data tests and contracts still run on every build.
    args = ["build", "--vars", json.dumps(dbt_vars), "--exclude-resource-type", "unit_test"]
    yield from dbt.cli(args, context=context, target_path=target).stream()
    _keep_parse(target / "partial_parse.msgpack", cached)


@dbt_assets(
    manifest=ensure_manifest(),
    project=dbt_project,
    dagster_dbt_translator=AlumniDbtTranslator(),
    exclude=DAILY_MODELS,
    pool=WAREHOUSE_POOL,
    name="dbt_models",
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    with dbt_pointed_at(warehouse):
        yield from dbt_build(context, dbt, run_vars(context))


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
    dbt_vars = run_vars(context) | partition_vars(context.partition_time_window)
    context.log.info(f"dbt build of {DAILY_MODELS} for {dbt_vars['min_date']} .. {dbt_vars['max_date']}")
    with dbt_pointed_at(warehouse):
        yield from dbt_build(context, dbt, dbt_vars)
