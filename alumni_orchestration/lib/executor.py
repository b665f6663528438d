"""The executor of the long runs: each step in its own process, forked from a server that imported the code
location once for the run.

With the default start method every step's process imports the whole code location again (dagster-dbt,
scikit-learn, the dbt manifest's assets) before doing anything: about 9 s a step on this machine, and
`alumni_main` has 22 steps, run one after the other since the warehouse's writers share one slot. The
forkserver pays that import once per run instead, which costs a short run more than it saves: a two-step
campaign wave ran 24.4 s with it against 15.3 s without (tests/test_recovery_daemon.py, 3 kills each), so
only the long jobs use it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def code_location_modules() -> list[str]:
    """The code location's module and every module under defs/, parents first, found without importing them."""
    modules = ["alumni_orchestration.definitions"]
    for path in sorted((PACKAGE_ROOT / "defs").rglob("*.py")):
        parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def forkserver_executor() -> dg.ExecutorDefinition:
    return dg.multiprocess_executor.configured(
        {"start_method": {"forkserver": {"preload_modules": code_location_modules()}}}, name="multiprocess_forkserver")
