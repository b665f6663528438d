"""A test run started in the background inherits SIGINT ignored; after an in-process Dagster run, a child a
test starts must still stop on SIGTERM (tests/conftest.py's pytest_configure). Without it, Dagster mapped
SIGTERM to the ignored SIGINT, children inherited SIGTERM ignored, and terminate() left services running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

INNER = '''
import signal, subprocess, sys
import dagster as dg


@dg.asset
def one():
    return 1


def test_a_child_started_after_an_in_process_run_stops_on_sigterm():
    assert dg.materialize([one]).success
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    child.terminate()
    assert child.wait(timeout=20) == -signal.SIGTERM
'''


def test_children_stop_on_sigterm_in_a_run_started_with_sigint_ignored(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                             "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_inner.py")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
