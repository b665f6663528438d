"""The nightly exports: every member list as CSV and XLSX under $ALUMNI_HOME/exports/<date>/.

Personal data: only paths and counts reach the logs and the metadata.
"""

import dagster as dg
import pandas as pd

from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.defs.workbench.lists import LIST_KEYS, SCHEMA
from alumni_orchestration.warehouse import WAREHOUSE_POOL
from alumni_orchestration.workbench.exports import export_list, exports_dir

EXPORTS = dg.AssetKey([SCHEMA, "list_exports"])


@dg.asset(
    key=EXPORTS,
    group_name=SCHEMA,
    kinds={"csv", "excel"},
    deps=list(LIST_KEYS.values()),
    tags={"workbench": "", "member_list": ""},
    pool=WAREHOUSE_POOL,  # reads only; in the pool as every asset, so it never waits on a writer's lock
    description="Each member list (ambassadors, volunteer candidates, at-risk, dues due, interest audiences) "
    "exported for the team as CSV (UTF-8 with BOM, ';' separator, for French Excel) and XLSX to "
    "$ALUMNI_HOME/exports/<date>/. On demand: `alumni export LIST [--segment S] [--topic T]`.",
)
def list_exports(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    frames = {}
    with warehouse.read() as conn:
        as_of = conn.execute("select max(as_of) from scoring.member_scores").fetchone()[0]
        for name in LIST_KEYS:
            frames[name] = conn.execute(f"select * from {SCHEMA}.{name}").df()
    folder = exports_dir(pd.Timestamp(as_of).date())
    written = [path for name, frame in frames.items() for path in export_list(frame, folder, name)]
    context.log.info(f"exported {len(frames)} lists ({len(written)} files) to {folder}")
    return dg.MaterializeResult(metadata={
        "folder": dg.MetadataValue.path(str(folder)),
        "files": len(written),
        **{f"rows_{name}": len(frame) for name, frame in frames.items()},
    })
