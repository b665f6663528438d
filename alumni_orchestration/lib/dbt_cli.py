"""The dbt CLI resource, without dagster-dbt's fixed costs that this project does not use, at every dbt step.

- dagster-dbt reads the dbt executable's version (to choose between dbt-core and dbt Fusion) by running
  `dbt --version` once per resource instance, so once per step that runs dbt: a whole dbt start and a PyPI
  lookup, about 4 s on this machine, four times a night. The executable is this environment's own dbt (see
  defs/dbt/resources.py), so the installed dbt-core's package metadata gives the same version at no cost.
- It also builds an in-process dbt adapter before each invocation (dbt's imports, the profile and the
  project: about 2 s), used only by `fetch_row_counts()` and `fetch_column_metadata()`, which this project
  does not call; `in_process_adapter=True` builds it again."""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from dagster_dbt import DbtCliResource
from packaging import version
from pydantic import Field


def environment_dbt() -> str:
    return str(Path(sys.executable).parent / "dbt")


class LocalDbtCliResource(DbtCliResource):
    in_process_adapter: bool = Field(default=False, description="build dagster-dbt's in-process dbt adapter before "
                                     "each invocation: needed only for fetch_row_counts / fetch_column_metadata")

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) != Path(environment_dbt()):  # another dbt: ask it, as dagster-dbt does
            return super()._cli_version
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]):
        return super()._initialize_dbt_core_adapter(args) if self.in_process_adapter else None
