"""Scoring settings: where models are saved, the seed, and an optional ground-truth folder."""

import dagster as dg
from pydantic import Field

from alumni_orchestration import settings


class ScoringResource(dg.ConfigurableResource):
    model_dir: str = Field(default_factory=lambda: str(settings.alumni_home() / "models"))
    seed: int = 0
    ground_truth_dir: str = Field(default="", description="the generator's ground_truth/ folder, for the oracle "
                                  "yardstick only; never an input to a model")
    history_days: int = Field(default=120, description="in a backfill, only the last this-many days are "
                              "(re)computed; older snapshots are left as they were")
    predict_threads: int | None = Field(default=1, description="threads for the dues model's predictions in the "
                                        "score history (one call per day); None: the libraries' default (all cores). "
                                        "On a shared 2-core machine one thread was 3x faster than two.")


@dg.definitions
def scoring_resources() -> dg.Definitions:
    import os

    return dg.Definitions(resources={"scoring": ScoringResource(ground_truth_dir=os.environ.get("ALUMNI_GROUND_TRUTH", ""))})
