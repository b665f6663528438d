"""The dbt CLI resource, pointed at the project and the warehouse."""

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from alumni_orchestration.defs.dbt.assets import dbt_project


@dg.definitions
def dbt_resources() -> dg.Definitions:
    dbt = DbtCliResource(project_dir=dbt_project, profiles_dir=str(dbt_project.project_dir),
                         dbt_executable=str(Path(sys.executable).parent / "dbt"))
    return dg.Definitions(resources={"dbt": dbt})
