"""The dbt CLI resource, without dagster-dbt's `dbt --version` subprocess at every dbt step.

dagster-dbt reads the dbt executable's version (to choose between dbt-core and dbt Fusion) by running
`dbt --version` once per resource instance, so once per step that runs dbt: a whole dbt start and a PyPI
lookup, about 4 s on this machine, four times a night. The executable is this environment's own dbt (see
defs/dbt/resources.py), so the installed dbt-core's package metadata gives the same version at no cost."""

from __future__ import annotations

import importlib.metadata
import sys
from functools import cached_property
from pathlib import Path

from dagster_dbt import DbtCliResource
from packaging import version


def environment_dbt() -> str:
    return str(Path(sys.executable).parent / "dbt")


class LocalDbtCliResource(DbtCliResource):
    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) != Path(environment_dbt()):  # another dbt: ask it, as dagster-dbt does
            return super()._cli_version
        return version.parse(importlib.metadata.version("dbt-core"))
