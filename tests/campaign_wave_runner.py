"""One campaign wave in a process of its own, for the SIGKILL test: `python -m tests.campaign_wave_runner
WAREHOUSE SENDGRID_HOST CAMPAIGN DAY CHUNK`. Prints READY once imported, then runs the wave's job."""

import sys


def main(warehouse: str, host: str, campaign: str, day: str, chunk: str) -> int:
    import dagster as dg

    from alumni_orchestration.defs.campaigns.assets import campaign_audience, campaign_sends
    from alumni_orchestration.defs.campaigns.resources import EmailSenderResource
    from alumni_orchestration.defs.warehouse.resources import WarehouseResource

    store = WarehouseResource(path=warehouse)
    sender = EmailSenderResource(mode="sandbox", api_key="SG.kill-test", host=host, warehouse=store,
                                 chunk_size=int(chunk))
    print("READY", flush=True)
    result = dg.materialize([campaign_audience, campaign_sends], resources={"warehouse": store, "email_sender": sender},
                            partition_key=dg.MultiPartitionKey({"campaign": campaign, "date": day}),
                            raise_on_error=False)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
