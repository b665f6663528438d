"""The main job: every asset but the campaigns, sources to scores. The nightly schedule and the demo run it.

The campaigns group is left out: its assets are partitioned by campaign and day, and a job holds one
partitioning. The job's partitions are the shared Europe/Paris days; a run over a range of days carries
the tags `dagster/asset_partition_range_start` / `_end` (a single-run backfill), and the unpartitioned
assets (snapshot sources, non-daily dbt models, scores) are rebuilt once in the same run.
"""

import dagster as dg

from alumni_orchestration.partitions import daily_partitions

MAIN_SELECTION = dg.AssetSelection.all() - dg.AssetSelection.groups("campaigns")

alumni_main = dg.define_asset_job(
    name="alumni_main",
    selection=MAIN_SELECTION,
    partitions_def=daily_partitions,
    description="Materialise sources, dbt marts and scores (not the campaigns). Daily assets take the run's "
    "partition range; the nightly schedule runs it over yesterday, or every day missed since the last success.",
)
