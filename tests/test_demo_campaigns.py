"""The demo's copy of campaigns.yaml: the class anniversaries fall on its campaign morning; the rest is unchanged."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from alumni_orchestration.campaigns.definitions import DEFINITIONS_FILE, load_campaigns
from alumni_orchestration.harness.demo import CAMPAIGN_SENSORS, demo_campaigns_file, main_runs, range_tags


def test_the_demo_copy_moves_only_the_anniversary_day(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    morning = dt.date(2026, 11, 24)
    copy = load_campaigns(demo_campaigns_file(tmp_path, morning))
    original = load_campaigns(DEFINITIONS_FILE)
    assert copy.keys() == original.keys()
    assert copy["class_anniversary"].lifecycle.on == "11-24" != original["class_anniversary"].lifecycle.on
    for campaign_id, campaign in original.items():
        if campaign_id != "class_anniversary":
            assert copy[campaign_id] == campaign
    assert dataclasses.replace(copy["class_anniversary"], lifecycle=original["class_anniversary"].lifecycle) \
        == original["class_anniversary"]


def test_the_demo_ticks_the_sensor_of_every_campaign() -> None:
    assert sorted(CAMPAIGN_SENSORS) == sorted(f"{campaign_id}_sensor" for campaign_id in load_campaigns(DEFINITIONS_FILE))


def test_the_demo_runs_the_history_then_each_of_the_last_nights() -> None:
    first, end = dt.date(2022, 11, 23), dt.date(2026, 11, 23)
    runs = main_runs(first, end)
    assert [tags for _, tags in runs] == [
        range_tags("2022-11-23", "2026-11-21"), range_tags("2026-11-22", "2026-11-22"),
        range_tags("2026-11-23", "2026-11-23")]
    assert len(main_runs(end, end)) == 1 and main_runs(end, end)[0][1] == range_tags(end.isoformat(), end.isoformat())
