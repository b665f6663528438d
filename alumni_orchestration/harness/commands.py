"""The bodies of the CLI's harness commands (`alumni generate`, `alumni sandbox`): they drive the simulator,
so cli.py only reaches them through a lazy import inside those commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from alumni_orchestration.sandbox.server import serve_forever
from alumni_orchestration.synthetic.generator import GeneratorConfig, generate_association


def generate(args: argparse.Namespace) -> int:
    config = GeneratorConfig(
        members=args.members,
        years=args.years,
        seed=args.seed,
        wart_rate=args.wart_rate,
        end_date=args.end_date,
    )
    manifest = generate_association(Path(args.out), config, membership_url=args.membership_url)
    counts = manifest["counts"]
    print(f"generated {counts['members']} members, {counts['dues_payments']} dues payments, "
          f"{counts['sendgrid_events']} email events, {counts['eventbrite_attendees']} Eventbrite attendees, "
          f"{counts['helloasso_orders']} HelloAsso orders into {args.out}")
    return 0


def sandbox(args: argparse.Namespace) -> int:
    serve_forever(
        data_dir=Path(args.data),
        port=args.port,
        host=args.host,
        webhook_url=args.webhook_url,
        fault_rate=args.fault_rate,
    )
    return 0
