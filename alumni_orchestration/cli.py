"""The `alumni` command: generate, sandbox, webhook, init, check, demo, campaigns resolve, bench."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


# Harness commands: they drive the simulator, so its modules are imported only when one of them runs.
def _generate(args: argparse.Namespace) -> int:
    from alumni_orchestration.harness.commands import generate

    return generate(args)


def _sandbox(args: argparse.Namespace) -> int:
    from alumni_orchestration.harness.commands import sandbox

    return sandbox(args)


def _webhook(args: argparse.Namespace) -> int:
    from alumni_orchestration.webhook.receiver import serve_forever

    public_key = args.public_key or os.environ.get("SENDGRID_WEBHOOK_PUBLIC_KEY")
    if not public_key:
        print("alumni webhook: give --public-key or set SENDGRID_WEBHOOK_PUBLIC_KEY", file=sys.stderr)
        return 2
    serve_forever(port=args.port, host=args.host, landing=args.landing, public_key=public_key)
    return 0


def _check(args: argparse.Namespace) -> int:
    from alumni_orchestration.operations.check import run_check

    return run_check()


def _init(args: argparse.Namespace) -> int:
    from alumni_orchestration.mapping.init import run_init

    return run_init(args.source, Path(args.out))


def _demo(args: argparse.Namespace) -> int:
    from alumni_orchestration.harness.demo import run_demo
    from alumni_orchestration.harness.ports import PortError

    try:
        return run_demo(members=args.members, years=args.years, seed=args.seed, headless=args.headless,
                        sandbox_port=args.sandbox_port, webhook_port=args.webhook_port, ui_port=args.ui_port)
    except PortError as exc:
        print(f"alumni demo: {exc}", file=sys.stderr)
        return 2


def _bench(args: argparse.Namespace) -> int:
    from alumni_orchestration.harness.bench import render_from_json, run_bench
    from alumni_orchestration.harness.bench.report import parse_extra_measures

    try:
        extra = parse_extra_measures(args.extra_measure)
    except ValueError as exc:
        print(f"alumni bench: {exc}", file=sys.stderr)
        return 2
    previous = Path(args.previous) if args.previous else None
    if args.report_from:
        print(f"results: {render_from_json(Path(args.report_from), extra, previous)}")
        return 0
    run_bench(sizes=[int(size) for size in args.sizes.split(",")], years=args.years, short_years=args.short_years,
              growth_members=args.growth_members, engagement_members=args.engagement_members,
              send_messages=args.send_messages, seed=args.seed, end_date=args.end_date, out_dir=Path(args.out),
              skip=frozenset(filter(None, args.skip.split(","))),
              phase_time_limit=args.phase_time_limit * 60 if args.phase_time_limit else None,
              command=" ".join(["alumni", *sys.argv[1:]]), date=args.date, extra_measures=extra, previous=previous)
    return 0


def _campaigns_resolve(args: argparse.Namespace) -> int:
    from alumni_orchestration.campaigns.resolve import resolve_from_environment

    try:
        resolution = resolve_from_environment(args.batch, assume=args.assume)
    except ValueError as exc:
        print(f"alumni campaigns resolve: {exc}", file=sys.stderr)
        return 2
    print(resolution.text())
    return 0 if resolution.settled else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alumni", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write a synthetic association")
    gen.add_argument("--members", type=int, default=2000)
    gen.add_argument("--years", type=int, default=3)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--out", required=True)
    gen.add_argument("--membership-url", default=None, help="SQLAlchemy URL; default: OUT/membership.sqlite")
    gen.add_argument("--wart-rate", type=float, default=0.02)
    gen.add_argument("--end-date", default=None, help="last simulated day (YYYY-MM-DD); default: yesterday")
    gen.set_defaults(func=_generate)

    sbx = sub.add_parser("sandbox", help="serve the SendGrid, Eventbrite and HelloAsso sandbox")
    sbx.add_argument("--data", required=True)
    sbx.add_argument("--port", type=int, default=8765)
    sbx.add_argument("--host", default="127.0.0.1")
    sbx.add_argument("--webhook-url", default=None)
    sbx.add_argument("--fault-rate", type=float, default=0.0)
    sbx.set_defaults(func=_sandbox)

    hook = sub.add_parser("webhook", help="receive the SendGrid Event Webhook")
    hook.add_argument("--port", type=int, default=8766)
    hook.add_argument("--host", default="127.0.0.1")
    hook.add_argument("--landing", required=True, help="landing folder (or object-store URL)")
    hook.add_argument("--public-key", default=None, help="or SENDGRID_WEBHOOK_PUBLIC_KEY")
    hook.set_defaults(func=_webhook)

    check = sub.add_parser("check", help="read-only health check of every configured connection; "
                           "exit code 1 when one fails")
    check.set_defaults(func=_check)

    init = sub.add_parser("init", help="propose a membership_mapping.yaml (and an environment template) for a "
                          "member file or database; exit code 1 when a required column has no guess")
    init.add_argument("source", help="a CSV or XLSX file, or a SQLAlchemy URL")
    init.add_argument("--out", default=".", help="folder of the proposed files (default: here)")
    init.set_defaults(func=_init)

    demo = sub.add_parser("demo", help="generate, start the sandbox, materialise everything, open the UI")
    demo.add_argument("--members", type=int, default=5000)
    demo.add_argument("--years", type=int, default=4)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--headless", action="store_true", help="run the loop once and exit, no UI")
    demo.add_argument("--sandbox-port", type=int, default=8765, help="the API sandbox's port (must be free)")
    demo.add_argument("--webhook-port", type=int, default=8766, help="the webhook receiver's port (must be free)")
    demo.add_argument("--ui-port", type=int, default=3000, help="the Dagster UI's port (must be free)")
    demo.set_defaults(func=_demo)

    camp = sub.add_parser("campaigns", help="operate the campaign ledger")
    camp_sub = camp.add_subparsers(dest="campaigns_command", required=True)
    resolve = camp_sub.add_parser("resolve", help="ask SendGrid what became of a batch with an unknown outcome, "
                                  "then close or re-plan its members (exit 1 while it stays unknown)")
    resolve.add_argument("--batch", required=True, help="the batch id the failed check names")
    resolve.add_argument("--assume", choices=["sent", "not-sent"], default=None,
                         help="only without Email Activity: what the SendGrid app's Activity feed shows")
    resolve.set_defaults(func=_campaigns_resolve)

    bench = sub.add_parser("bench", help="the benchmark ladder; writes benchmarks/results/<date>.md")
    bench.add_argument("--sizes", default="10000,100000,1000000", help="member counts, comma-separated")
    bench.add_argument("--years", type=int, default=3, help="years of history of the ladder")
    bench.add_argument("--short-years", type=int, default=1, help="the shorter history of the nightly-vs-history ratio")
    bench.add_argument("--growth-members", type=int, default=100_000)
    bench.add_argument("--engagement-members", type=int, default=1_000_000,
                       help="size of the SQL marts vs pandas peers comparison")
    bench.add_argument("--send-messages", type=int, default=20_000)
    bench.add_argument("--seed", type=int, default=42)
    bench.add_argument("--end-date", default="2026-01-10", help="last generated day (fixed, so the cache holds)")
    bench.add_argument("--out", default="benchmarks/results")
    bench.add_argument("--skip", default="", help="any of pipeline,growth,engagement,send")
    bench.add_argument("--phase-time-limit", type=float, default=None,
                       help="minutes; a phase still running then is stopped, keeping the stages it finished")
    bench.add_argument("--date", default=None, help="results file to add to (YYYY-MM-DD); default: today")
    bench.add_argument("--report-from", default=None, metavar="RESULTS.json",
                       help="measure nothing: render the markdown again from a results file's JSON")
    bench.add_argument("--extra-measure", action="append", default=[], metavar="NAME=SECONDS",
                       help="a figure measured outside the bench, kept in the JSON: make_test_fast, make_test "
                       "or dbt_fixed_cost_per_night (repeatable)")
    bench.add_argument("--previous", default=None, metavar="RESULTS.json",
                       help="the results whose figures stand beside these; default: the latest earlier file in --out")
    bench.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
