"""The Dagster code location: everything under alumni_orchestration/defs/.

Runs execute each step in its own process (isolation; a killed step fails alone) started from a forkserver
that has imported the code location once per run: without it every step's process imported the whole code
location again (dagster-dbt, scikit-learn, the dbt manifest's assets) before doing anything, about 9 s a step
on this machine, 22 steps a night, on the critical path since the warehouse's writers run one at a time.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path

import dagster as dg

DEFS_PACKAGE = "alumni_orchestration.defs"


def code_location_modules() -> list[str]:
    """This module and every module under defs/, in the order a forkserver should import them."""
    package = __import__(DEFS_PACKAGE, fromlist=["__path__"])
    return [__name__, *(m.name for m in pkgutil.walk_packages(package.__path__, f"{DEFS_PACKAGE}."))]


def step_executor() -> dg.ExecutorDefinition:
    return dg.multiprocess_executor.configured(
        {"start_method": {"forkserver": {"preload_modules": code_location_modules()}}}, name="multiprocess")


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(dg.load_from_defs_folder(path_within_project=Path(__file__).parent / "defs"),
                                dg.Definitions(executor=step_executor()))
