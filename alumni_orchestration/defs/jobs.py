"""The main job: every asset, sources to campaigns. The nightly schedule and the demo run it."""

import dagster as dg

alumni_main = dg.define_asset_job(
    name="alumni_main",
    selection=dg.AssetSelection.all(),
    description="Materialise everything: sources, dbt marts, scores. Partitioned assets take the run's partition range.",
)
