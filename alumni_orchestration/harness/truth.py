"""The simulated truth, written where `campaign_results` can read it without importing the simulator."""

from __future__ import annotations

from pathlib import Path

from alumni_orchestration.defs.campaigns.results import TRUE_EFFECTS_FILE


def write_simulated_truth(data_dir: Path, truth_dir: Path) -> Path:
    """Every member's true effect of a dues reminder, per dues year of the generated world, as
    <truth_dir>/true_effects.csv (campaign_id, dues_year, member_id, true_effect): point
    ALUMNI_SIMULATED_TRUTH_DIR at truth_dir and campaign_results shows each estimate beside it."""
    from alumni_orchestration.sandbox.world import true_reminder_effects

    effects = true_reminder_effects(Path(data_dir)).assign(campaign_id="dues_reminder")
    truth_dir.mkdir(parents=True, exist_ok=True)
    path = truth_dir / TRUE_EFFECTS_FILE
    effects[["campaign_id", "dues_year", "member_id", "true_effect"]].to_csv(path, index=False)
    return path
