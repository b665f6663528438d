"""dbt's profile bounds DuckDB's memory and spills to disk (dbt_project/profiles.yml), and a model after one
that spilled still runs. Regression: with memory_limit and temp_directory as dbt-duckdb `settings`, every
cursor after the first spill failed with "Cannot switch temporary directory after the current one has been
used" (dbt-duckdb#600); at 1,000,000 members every dbt step of the benchmark's full load failed so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# A sort of 8M rows cannot fit in 96 MB: DuckDB spills it to temp_directory.
SPILLING_MODEL = "select range as n, random() as r from range(8000000) order by r"


def test_a_model_after_one_that_spilled_to_disk_still_runs(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: spill\nversion: '1.0'\nprofile: alumni\nconfig-version: 2\n")
    (project / "models" / "a_spills.sql").write_text("{{ config(materialized='table') }}\n" + SPILLING_MODEL)
    (project / "models" / "b_after.sql").write_text(
        "{{ config(materialized='table') }}\nselect count(*) as n, current_setting('memory_limit') as memory_limit, "
        "current_setting('temp_directory') as temp_directory from {{ ref('a_spills') }}")
    shutil.copy(ROOT / "dbt_project" / "profiles.yml", project / "profiles.yml")
    temp = tmp_path / "duckdb_tmp"
    env = {**os.environ, "ALUMNI_WAREHOUSE": str(tmp_path / "warehouse.duckdb"), "ALUMNI_HOME": str(tmp_path),
           "ALUMNI_DUCKDB_MEMORY_LIMIT": "96MB", "ALUMNI_DUCKDB_TEMP_DIR": str(temp), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    dbt = Path(sys.executable).parent / "dbt"
    result = subprocess.run([str(dbt), "run", "--profiles-dir", str(project), "--project-dir", str(project)],
                            cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert "Cannot switch temporary directory" not in result.stdout + result.stderr
    assert result.returncode == 0, result.stdout[-3000:]
    assert "PASS=2" in result.stdout
    with duckdb.connect(env["ALUMNI_WAREHOUSE"], read_only=True) as conn:
        rows, limit, folder = conn.execute("select * from main.b_after").fetchone()
    assert rows == 8_000_000 and limit.endswith("MiB") and float(limit.split()[0]) < 100 and folder == str(temp)
