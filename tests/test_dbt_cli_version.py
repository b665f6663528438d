"""The dbt resource knows its dbt's version without starting dbt (dagster-dbt's `dbt --version` at every dbt step
cost about 4 s), and gives the same answer as that subprocess."""

from __future__ import annotations

import stat
from pathlib import Path

from dagster_dbt import DbtCliResource

from alumni_orchestration.defs.dbt.assets import dbt_project
from alumni_orchestration.lib.dbt_cli import LocalDbtCliResource, environment_dbt


def _resource(cls: type, executable: str) -> DbtCliResource:
    return cls(project_dir=dbt_project, profiles_dir=str(dbt_project.project_dir), dbt_executable=executable)


def test_the_environment_dbt_version_equals_what_dbt_version_prints() -> None:
    assert _resource(LocalDbtCliResource, environment_dbt())._cli_version == \
        _resource(DbtCliResource, environment_dbt())._cli_version


def test_another_dbt_executable_is_still_asked(tmp_path: Path) -> None:
    fake = tmp_path / "dbt"
    fake.write_text("#!/bin/sh\necho 'Core:\n  - installed: 9.8.7'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    assert str(_resource(LocalDbtCliResource, str(fake))._cli_version) == "9.8.7"


def test_the_definitions_run_dbt_through_it() -> None:
    from alumni_orchestration.definitions import defs

    assert isinstance(defs().resources["dbt"], LocalDbtCliResource)


def test_the_in_process_adapter_is_built_only_when_asked(tmp_path: Path, monkeypatch) -> None:
    from alumni_orchestration.defs.dbt.assets import DBT_PROJECT_DIR

    monkeypatch.setenv("ALUMNI_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.chdir(DBT_PROJECT_DIR)  # as dagster-dbt calls it, from the project
    args = ["build", "--vars", '{"as_of": "2026-01-10"}']
    assert _resource(LocalDbtCliResource, environment_dbt())._initialize_dbt_core_adapter(args) is None
    asked = LocalDbtCliResource(project_dir=dbt_project, profiles_dir=str(dbt_project.project_dir),
                                dbt_executable=environment_dbt(), in_process_adapter=True)
    assert asked._initialize_dbt_core_adapter(args).type() == "duckdb"
