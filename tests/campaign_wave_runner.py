"""One campaign wave in a process of its own, for the SIGKILL test: `python -m tests.campaign_wave_runner
WAREHOUSE SENDGRID_HOST CAMPAIGN DAY CHUNK [PAUSE]`. Prints READY once imported, then runs the wave's job.

PAUSE, `before:K` or `after:K`, stops the wave around its K-th mail/send request (after the chunk's batch is
committed, before or after the request leaves), prints PAUSED and waits on stdin: the test kills it there, so
that some kills surely land with a chunk in flight, whatever the machine's speed."""

import sys
from typing import Any


class PausingTransport:
    """The real transport, with a pause around one of its mail/send requests."""

    def __init__(self, inner: Any, pause: str) -> None:
        self.inner = inner
        self.when, at = pause.split(":")
        self.at = int(at)
        self.requests = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def send(self, body: dict) -> None:
        self.requests += 1
        if self.requests == self.at and self.when == "before":
            self._pause()
        self.inner.send(body)
        if self.requests == self.at and self.when == "after":
            self._pause()

    @staticmethod
    def _pause() -> None:
        print("PAUSED", flush=True)
        sys.stdin.readline()


def main(warehouse: str, host: str, campaign: str, day: str, chunk: str, pause: str = "") -> int:
    import dagster as dg

    from alumni_orchestration.defs.campaigns.assets import campaign_audience, campaign_sends
    from alumni_orchestration.defs.campaigns.resources import EmailSenderResource
    from alumni_orchestration.defs.warehouse.resources import WarehouseResource

    class PausingSender(EmailSenderResource):
        pause: str = ""

        def transport(self):
            inner = super().transport()
            return PausingTransport(inner, self.pause) if self.pause else inner

    store = WarehouseResource(path=warehouse)
    sender = PausingSender(mode="sandbox", api_key="SG.kill-test", host=host, warehouse=store,
                           chunk_size=int(chunk), pause=pause)
    print("READY", flush=True)
    result = dg.materialize([campaign_audience, campaign_sends], resources={"warehouse": store, "email_sender": sender},
                            partition_key=dg.MultiPartitionKey({"campaign": campaign, "date": day}),
                            raise_on_error=False)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
