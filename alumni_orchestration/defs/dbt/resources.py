"""The dbt CLI resource, pointed at the project and the warehouse."""

import dagster as dg

from alumni_orchestration.defs.dbt.assets import dbt_project
from alumni_orchestration.lib.dbt_cli import LocalDbtCliResource, environment_dbt


@dg.definitions
def dbt_resources() -> dg.Definitions:
    dbt = LocalDbtCliResource(project_dir=dbt_project, profiles_dir=str(dbt_project.project_dir),
                              dbt_executable=environment_dbt())
    return dg.Definitions(resources={"dbt": dbt})
