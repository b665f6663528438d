"""What every source asset reports about a load: counts, quarantine reasons, window. No personal data."""

from collections import Counter
from typing import Any

import dagster as dg
import pandas as pd

QUARANTINE_COLUMNS = ["source", "record_key", "reason", "scope", "payload", "partition_key"]


def quarantine_frame(bad: list[dict[str, Any]], partition_key: str = "") -> pd.DataFrame:
    """Quarantine rows as a frame; a row's own partition_key (its day) wins over the default."""
    frame = pd.DataFrame.from_records(bad, columns=QUARANTINE_COLUMNS) if bad else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    frame["partition_key"] = frame["partition_key"].fillna(partition_key)
    return frame


def load_metadata(
    *,
    rows_read: int,
    rows_loaded: int,
    quarantined: list[dict[str, Any]],
    window: str | None = None,
    last_event_time: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    reasons = Counter(f"{q['source']}:{q['reason']}" for q in quarantined)
    metadata: dict[str, Any] = {
        "dagster/row_count": rows_loaded,
        "rows_read": rows_read,
        "rows_loaded": rows_loaded,
        "rows_quarantined": len(quarantined),
        "quarantined_by_reason": dg.MetadataValue.json(dict(sorted(reasons.items()))),
    }
    if window:
        metadata["window"] = window
    if last_event_time is not None:
        metadata["last_event_time"] = str(last_event_time)
    metadata.update(extra)
    return metadata


def conservation_check(
    asset_key: dg.AssetKey, rows_read: int, rows_loaded: int, rows_quarantined: int, duplicates: int = 0
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="rows_conserved",
        passed=rows_read == rows_loaded + rows_quarantined + duplicates,
        metadata={
            "rows_read": rows_read,
            "rows_loaded": rows_loaded,
            "rows_quarantined": rows_quarantined,
            "duplicates_merged": duplicates,
        },
    )


def conservation_spec(asset_key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name="rows_conserved",
        asset=asset_key,
        blocking=True,
        description="Records read = rows loaded + rows quarantined (+ exact duplicates merged).",
    )
