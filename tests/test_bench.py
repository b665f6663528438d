"""The benchmark harness: its pure parts, and one end-to-end run at a tiny size. No timing assertions:
the speed targets live in the benchmark's results file, never in tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alumni_orchestration.bench import (
    GB,
    NOT_YET,
    history_growth,
    phase_windows,
    run_bench,
    send_batches,
    target_rows,
)
from alumni_orchestration.contracts import mail_send_errors

TARGETS = (
    "nightly incremental run, 100,000 members",
    "nightly incremental run, 1,000,000 members",
    "peak RSS, 100,000 members",
    "peak RSS, 1,000,000 members",
    "nightly time, 3-year ÷ 1-year history",
    "full first load, 100,000 members",
    "dbt-duckdb mart vs the pandas peer",
    "send throughput to the sandbox",
)


def _run(stages: dict[str, float], failed: str | None = None, peak: int = GB) -> dict:
    return {"stages": stages, "total_seconds": sum(stages.values()), "success": failed is None, "failed_stage": failed,
            "peak_rss_bytes": peak, "peak_rss_self_bytes": peak, "peak_rss_children_bytes": 0, "warehouse_bytes": GB}


def test_full_load_stops_the_day_before_the_nightly_day() -> None:
    windows = phase_windows("2022-12-01", "2026-11-21")
    assert windows == {"full": ("2022-12-01", "2026-11-20"), "nightly": ("2026-11-21", "2026-11-21")}


def test_targets_say_met_missed_by_how_much_or_not_measured() -> None:
    measurements = {
        "years": 3,
        "pipeline": {"100000m-3y": {"members": 100_000, "years": 3,
                                    "full": _run({"ingest": 300.0, "dbt": 100.0, "scoring": 50.0}, peak=5 * GB),
                                    "nightly": _run({"ingest": 60.0, "dbt": 20.0, "scoring": 10.0})}},
        "send": {"messages_per_second": 2500.0},
        "engagement": {"members": 100_000, "speedup_dbt_run": 2.0, "speedup_sql": 20.0, "dbt_run_seconds": 5.0,
                       "sql_seconds": 0.5, "pandas_read_seconds": 4.0, "pandas_compute_seconds": 6.0},
    }
    rows = {row["measure"].split(" (")[0]: row for row in target_rows(measurements)}
    assert rows["nightly incremental run, 100,000 members"]["status"] == "missed by 30.0 s (1.5× the target)"
    assert rows["nightly incremental run, 100,000 members"]["why"] == "ingest 60.0 s, dbt 20.0 s, scoring 10.0 s"
    assert rows["full first load, 100,000 members"]["why"] == ""  # only missed targets need a why
    assert rows["full first load, 100,000 members"]["status"] == "met"
    assert rows["peak RSS, 100,000 members"]["status"].startswith("missed by 1.00 GB")
    assert rows["send throughput to the sandbox"]["status"] == "met"
    assert rows["dbt-duckdb mart vs the pandas peer"]["status"] == "missed: 40% of the target"
    assert "4.5 s starting, parsing and connecting" in rows["dbt-duckdb mart vs the pandas peer"]["why"]
    assert rows["nightly incremental run, 1,000,000 members"]["status"] == "not measured"
    assert rows["nightly time, 3-year ÷ 1-year history"]["status"] == "not measured"


def test_history_growth_compares_only_the_stages_that_succeeded_in_both() -> None:
    long = _run({"ingest": 12.0, "dbt": 30.0, "scoring": 40.0})
    short = _run({"ingest": 10.0, "dbt": 20.0, "scoring": 1.0}, failed="scoring")
    growth = history_growth(long, short)
    assert growth["stages_compared"] == ["ingest", "dbt"] and not growth["complete"]
    assert growth["ratio"] == pytest.approx(42.0 / 30.0)
    assert history_growth(long, None) is None


def test_send_batches_are_valid_mail_send_bodies_of_at_most_1000_personalizations() -> None:
    recipients = [f"member{i}@example.org" for i in range(2500)]
    bodies = send_batches(recipients, 1000)
    assert [len(b["personalizations"]) for b in bodies] == [1000, 1000, 500]
    assert [p["to"][0]["email"] for b in bodies for p in b["personalizations"]] == recipients
    assert all(mail_send_errors(body, now=0.0) == [] for body in bodies)


def test_bench_end_to_end_at_a_tiny_size_writes_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALUMNI_HOME", str(tmp_path / "home"))
    out = tmp_path / "results"
    # One year of history for both sides of the history ratio: a single tiny association, run once.
    path = run_bench(sizes=[300], years=1, short_years=1, growth_members=300, engagement_members=300,
                     send_messages=1500, out_dir=out, command="alumni bench --sizes 300 (test)")
    text = path.read_text()
    measurements = json.loads(path.with_suffix(".json").read_text())

    assert "## Machine" in text and "cores" in text and "CPU:" in text
    # Every target of the issue has its row, with the shorter-history wording adapted to the years asked.
    target_lines = [line for line in text.splitlines() if line.startswith("| ") and ("≤" in line or "≥" in line)]
    assert len(target_lines) == len(TARGETS)
    for target, line in zip(TARGETS, target_lines, strict=True):
        assert line.startswith(f"| {target.replace('3-year ÷ 1-year', '1-year ÷ 1-year')}"), line
    scenario = measurements["pipeline"]["300m-1y"]
    for phase in ("full", "nightly"):
        run = scenario[phase]
        assert {"ingest", "dbt", "scoring"} <= set(run["stages"])
        assert "ingest" not in (run["failed_stage"] or "") and "dbt" not in (run["failed_stage"] or "")
        assert run["peak_rss_bytes"] > 0 and run["warehouse_bytes"] > 0
    assert text.count(f"| {NOT_YET} | {NOT_YET} |") == 2  # sensors and sends: one full and one nightly row
    assert "| 300 members, 1 y | full first load" in text and "| 300 members, 1 y | nightly" in text
    engagement = measurements["engagement"]
    assert engagement["output_rows"] > 0 and engagement["max_abs_difference"] < 0.01  # index points, 0-100
    assert measurements["send"]["messages"] == 1500 and measurements["send"]["requests"] == 2
    assert measurements["growth"]["ratio"] == 1.0  # the same run on both sides
    assert "@" not in text  # no member's address in the results


def test_the_bench_sandbox_pages_helloasso_exactly_as_the_sandbox_does(small_association: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from alumni_orchestration.bench import make_indexed_handler
    from alumni_orchestration.ingest.helloasso import HelloAssoClient
    from alumni_orchestration.sandbox import server

    data = tmp_path / "association"
    shutil.copytree(small_association, data)
    slug = json.loads((data / "manifest.json").read_text())["organization"]["helloasso_slug"]

    def listings() -> tuple[list, list]:
        with server.SandboxServer(data) as sandbox:
            client = HelloAssoClient(api_url=f"{sandbox.base_url}/helloasso/v5",
                                     token_url=f"{sandbox.base_url}/helloasso/oauth2/token",
                                     client_id="sandbox-client", client_secret="sandbox-secret",
                                     organization_slug=slug)
            window = ("2020-01-01T00:00:00+01:00", "2027-01-01T00:00:00+01:00")
            return list(client.orders(*window)), list(client.payments(*window))

    plain = listings()
    monkeypatch.setattr(server, "make_handler", make_indexed_handler(server.make_handler))
    indexed = listings()
    assert len(plain[0]) > 100 and len(plain[1]) > 100  # several pages each
    assert indexed == plain
