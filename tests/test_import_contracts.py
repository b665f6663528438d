"""The import contracts of pyproject.toml ([tool.importlinter]): production never imports the simulator
(synthetic, sandbox) or the harness, and only the code location loads defs/. They hold on this tree, and
`lint-imports` fails as soon as a forbidden import is added."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "alumni_orchestration"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
SIMULATOR_AND_HARNESS = {"synthetic", "sandbox", "harness"}


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env={"PYTHONPATH": str(root), "PATH": ""},
                          capture_output=True, text=True, timeout=120)


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "alumni_orchestration", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_import_contracts_hold_on_this_tree() -> None:
    run = _lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in run.stdout


@pytest.mark.parametrize(("module", "forbidden", "contract"), [
    ("scoring/leak.py", "from alumni_orchestration.synthetic.generator import ORG_SLUG",
     "Production never imports the simulator or the harness"),
    ("defs/leak.py", "from alumni_orchestration.sandbox.world import true_reminder_uplift",
     "Production never imports the simulator or the harness"),
    ("ingest/leak.py", "from alumni_orchestration.defs.resources import build_resources",
     "defs is imported by nothing but the code location (and the harness)"),
    ("harness/bench/leak.py", "from alumni_orchestration.harness.demo import run_demo",
     "The demo and the benchmark are independent"),
])
def test_a_forbidden_import_breaks_the_contracts(package_copy: Path, module: str, forbidden: str, contract: str) -> None:
    leak = package_copy / "alumni_orchestration" / module
    leak.write_text(f"def leak():\n    {forbidden}\n\n    return None\n")  # even a lazy import counts
    run = _lint_imports(package_copy)
    assert run.returncode != 0
    assert f"{contract} BROKEN" in run.stdout
    assert f"alumni_orchestration.{module[:-3].replace('/', '.')} ->" in run.stdout


def test_the_cli_imports_the_simulator_only_inside_harness_commands() -> None:
    code = ("import json, sys, alumni_orchestration.cli\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('alumni_orchestration.'))))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT)})
    loaded = {name.split(".")[1] for name in json.loads(run.stdout)}
    assert not loaded & (SIMULATOR_AND_HARNESS | {"defs"}), loaded


def test_every_top_level_module_is_either_production_or_simulator_and_harness() -> None:
    """A new package must be placed on one side of the line, or the contracts would not see it."""
    production = set(_contracts()[0]["source_modules"])
    top_level = {path.stem if path.suffix == ".py" else path.name for path in PACKAGE.iterdir()
                 if (path.suffix == ".py" and path.stem not in {"__init__", "cli"}) or (path / "__init__.py").exists()}
    unclassified = {m for m in top_level if f"alumni_orchestration.{m}" not in production} - SIMULATOR_AND_HARNESS
    assert not unclassified, f"add these to [tool.importlinter] in pyproject.toml: {sorted(unclassified)}"
