"""The membership data-quality checks: warnings on tonight's quality metrics of raw.members.

The metrics (and their change since the previous night) are computed by the snapshot load and kept in
the materialization's metadata; the checks read them back from the instance, so they never touch the
warehouse and never block the nightly run: a degraded night warns, the marts are still built.
"""

import dagster as dg

from alumni_orchestration.defs.membership.assets import latest_quality_metrics
from alumni_orchestration.ingest.membership_quality import QualityThresholds, assess, check_descriptions
from alumni_orchestration.warehouse import RAW_SCHEMA

MEMBERS = dg.AssetKey([RAW_SCHEMA, "members"])


def _quality_check_specs(thresholds: QualityThresholds) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(name=name, asset=MEMBERS, description=description, blocking=False)
            for name, description in check_descriptions(thresholds).items()]


@dg.multi_asset_check(
    specs=_quality_check_specs(QualityThresholds.from_env()),
    name="membership_quality_checks",
    description="Quality of the membership source: email completeness, duplicate emails, quarantine rate.",
)
def membership_quality_checks(context: dg.AssetCheckExecutionContext):
    # Tonight's materialization is the latest one: the checks run after raw.members in the same run.
    metrics = latest_quality_metrics(context.instance, MEMBERS) or {}
    for verdict in assess(metrics, QualityThresholds.from_env()):
        yield dg.AssetCheckResult(
            asset_key=MEMBERS, check_name=verdict.check, passed=verdict.passed,
            severity=dg.AssetCheckSeverity.WARN, description=verdict.summary,
            metadata={**verdict.values, "summary": verdict.summary},
        )
