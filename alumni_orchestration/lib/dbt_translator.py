"""How dbt nodes appear in Dagster: keys named by schema, groups by layer, sources on the raw assets."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

LAYERS = ("staging", "intermediate", "marts")


def layer_of(props: Mapping[str, Any]) -> str:
    fqn = props.get("fqn") or []
    for part in fqn[1:]:
        if part in LAYERS:
            return part
    return "marts"


class AlumniDbtTranslator(DagsterDbtTranslator):
    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            # A source written by a Python asset outside raw (the campaign ledger) names its key in meta.dagster.
            declared = ((dbt_resource_props.get("meta") or {}).get("dagster") or {}).get("asset_key")
            if declared:
                return dg.AssetKey(declared)
            # dbt sources are the tables the source assets write: raw.<table>
            return dg.AssetKey(["raw", dbt_resource_props["name"]])
        return dg.AssetKey([layer_of(dbt_resource_props), dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return layer_of(dbt_resource_props)
