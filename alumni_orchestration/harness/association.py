"""A generated association, kept on disk while its parameters hold (the demo's and the benchmark's)."""

from __future__ import annotations

import json
from pathlib import Path


def ensure_association(data: Path, members: int, years: int, seed: int, end_date: str) -> dict:
    """The manifest of the association in `data`, generated first unless its config is the one asked."""
    from alumni_orchestration.synthetic.generator import GeneratorConfig, generate_association

    manifest_path = data / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        config = manifest["config"]
        if (config["members"], config["years"], config["seed"], config["end_date"]) == (members, years, seed, end_date):
            return manifest
    print(f"Generating a {members}-member association ({years} years of history) in {data} ...", flush=True)
    return generate_association(data, GeneratorConfig(members=members, years=years, seed=seed, end_date=end_date))
