"""The main job: every asset but the campaigns, sources to scores. The nightly schedule and the demo run it.

The campaign waves are left out: they are partitioned by campaign and day, and a job holds one
partitioning (their sensors run them); the campaign results are in. The job's partitions are the shared Europe/Paris days; a run over a range of days carries
the tags `dagster/asset_partition_range_start` / `_end` (a single-run backfill), and the unpartitioned
assets (snapshot sources, non-daily dbt models, scores) are rebuilt once in the same run.
"""

import dagster as dg

from alumni_orchestration.partitions import daily_partitions

# The campaign results are rebuilt every night: late webhook events and payments keep arriving.
MAIN_SELECTION = (dg.AssetSelection.all() - dg.AssetSelection.groups("campaigns")) | dg.AssetSelection.assets(
    ["campaigns", "campaign_results"])

alumni_main = dg.define_asset_job(
    name="alumni_main",
    selection=MAIN_SELECTION,
    partitions_def=daily_partitions,
    description="Materialise sources, dbt marts and scores (not the campaigns). Daily assets take the run's "
    "partition range; the nightly schedule runs it over yesterday, or every day missed since the last success.",
)
