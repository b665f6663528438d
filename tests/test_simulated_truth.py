"""The simulated truth reaches campaign_results through a file, not an import: the harness writes every
member's true effect, and the asset reads it only when ALUMNI_SIMULATED_TRUTH_DIR names that folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alumni_orchestration.campaigns.results import Costs, campaign_results
from alumni_orchestration.defs.campaigns.results import simulated_truth
from alumni_orchestration.harness.truth import write_simulated_truth
from alumni_orchestration.sandbox.world import true_reminder_uplift


def _outcomes(ids: np.ndarray, cycle: str) -> pd.DataFrame:
    treated = np.arange(len(ids)) % 3 != 0
    retained = np.arange(len(ids)) % 4 == 0
    return pd.DataFrame({
        "campaign_id": "dues_reminder", "cycle": cycle, "member_id": ids,
        "arm": np.where(treated, "treatment", "control"), "sent": treated, "delivered": treated,
        "opened": False, "clicked": False, "unsubscribed": False, "spam_reported": False,
        "retained": retained | (treated & (np.arange(len(ids)) % 4 == 1)), "revenue_eur": 0.0})


@pytest.mark.slow
def test_campaign_results_shows_the_harness_truth_of_each_audience(small_association: Path, tmp_path: Path) -> None:
    write_simulated_truth(small_association, tmp_path / "truth")
    year = int(pd.read_csv(small_association / "ground_truth/dues_probabilities.csv").dues_year.max())
    # Two audiences of one cycle year, with a member id the world does not know (no effect).
    first, second = np.arange(1, 301), np.append(np.arange(250, 600), 999_999)
    members = pd.concat([_outcomes(first, f"{year}-r1"), _outcomes(second, f"{year}-r2")], ignore_index=True)
    results = campaign_results(members, Costs(per_email_eur=0.01, acquire_member_eur=9.0))

    truth = simulated_truth(results, members, str(tmp_path / "truth")).set_index("cycle")

    assert truth.true_uplift[f"{year}-r1"] == pytest.approx(true_reminder_uplift(small_association, first, year), rel=1e-12)
    assert truth.true_uplift[f"{year}-r2"] == pytest.approx(true_reminder_uplift(small_association, second, year), rel=1e-12)
    assert truth.true_uplift[f"{year}-r1"] != truth.true_uplift[f"{year}-r2"]


def test_without_a_truth_folder_campaign_results_has_no_truth(tmp_path: Path) -> None:
    members = _outcomes(np.arange(1, 50), "2026-r1")
    results = campaign_results(members, Costs(per_email_eur=0.01, acquire_member_eur=9.0))
    assert simulated_truth(results, members, "") is None
    assert simulated_truth(results, members, str(tmp_path)) is None  # a folder with no truth in it
