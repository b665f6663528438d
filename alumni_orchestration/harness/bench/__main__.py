"""The benchmark's own child processes: `python -m alumni_orchestration.harness.bench phase FIRST LAST OUT.json`
(one pipeline phase) or `... sandbox DATA PORT` (the phase's API sandbox). `alumni bench` is the entry point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from alumni_orchestration.harness.bench.phase import run_phase, serve_bench_sandbox


def _phase_main(first_day: str, last_day: str, out: str) -> int:
    result = run_phase(first_day, last_day, progress=Path(out).with_suffix(".partial.json"))
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "phase":
        sys.exit(_phase_main(*sys.argv[2:]))
    if len(sys.argv) == 4 and sys.argv[1] == "sandbox":
        serve_bench_sandbox(Path(sys.argv[2]), int(sys.argv[3]))
    sys.exit("usage: python -m alumni_orchestration.harness.bench phase FIRST_DAY LAST_DAY OUT.json | sandbox DATA PORT")
