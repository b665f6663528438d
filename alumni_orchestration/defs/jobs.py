"""The main job: every asset but the campaigns, sources to scores. The nightly schedule and the demo run it.

The campaign waves are left out: they are partitioned by campaign and day, and a job holds one
partitioning (their sensors run them); the campaign results are in. The job's partitions are the shared Europe/Paris days; a run over a range of days carries
the tags `dagster/asset_partition_range_start` / `_end` (a single-run backfill), and the unpartitioned
assets (snapshot sources, non-daily dbt models, scores) are rebuilt once in the same run.
"""

import dagster as dg

from alumni_orchestration.lib.executor import forkserver_executor
from alumni_orchestration.partitions import daily_partitions

# The campaign results are rebuilt every night: late webhook events and payments keep arriving.
MAIN_SELECTION = (dg.AssetSelection.all() - dg.AssetSelection.groups("campaigns")) | dg.AssetSelection.assets(
    ["campaigns", "campaign_results"])

# A run whose worker died (SIGKILL, OOM, reboot) is launched again by the daemon (run_retries in the
# instance; a run that failed on its own is not): re-running a range of days rebuilds the same days.
# FROM_FAILURE (Dagster's default) skips the steps that had succeeded.
CRASH_RETRIES = 2
MAIN_RETRY_TAGS = {"dagster/max_retries": str(CRASH_RETRIES), "dagster/retry_strategy": "FROM_FAILURE"}
# A campaign wave is retried whole: a re-run of both steps is what the send ledger is built and tested for.
WAVE_RETRY_TAGS = {"dagster/max_retries": str(CRASH_RETRIES), "dagster/retry_strategy": "ALL_STEPS"}

alumni_main = dg.define_asset_job(
    name="alumni_main",
    selection=MAIN_SELECTION,
    partitions_def=daily_partitions,
    tags=MAIN_RETRY_TAGS,
    executor_def=forkserver_executor(),  # 22 steps: each step's process forks from one import of the code
    description="Materialise sources, dbt marts and scores (not the campaigns). Daily assets take the run's "
    "partition range; the nightly schedule runs it over yesterday, or every day missed since the last success.",
)
