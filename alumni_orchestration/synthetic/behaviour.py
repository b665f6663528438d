"""The behavioural model: latent traits to probabilities. Pure, vectorised numpy functions.

Every observable in the synthetic association is drawn from these probabilities, so that the
pipeline's scores can be validated against the truth the generator keeps in ground_truth/.
"""

from __future__ import annotations

import numpy as np

from alumni_orchestration.synthetic.taxonomy import LIFE_STAGES

STAGE_INDEX = {stage: i for i, stage in enumerate(LIFE_STAGES)}

# Per life stage: shift of attachment, means, and dues-paying habit.
STAGE_ATTACHMENT_SHIFT = np.array([0.10, -0.08, -0.04, 0.02, 0.06, 0.10])
STAGE_MEANS = np.array([0.15, 0.40, 0.60, 0.72, 0.70, 0.55])
STAGE_DUES_SHIFT = np.array([-0.3, -0.7, -0.2, 0.1, 0.3, 0.4])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def life_stage(age: np.ndarray, graduation_year: np.ndarray, year: int) -> np.ndarray:
    """Index into LIFE_STAGES from age and graduation year, as of a calendar year."""
    years_since = year - graduation_year
    stage = np.select(
        [
            years_since < 0,
            (years_since <= 5) & (age < 32),
            age < 45,
            age < 55,
            age < 62,
        ],
        [0, 1, 2, 3, 4],
        default=5,
    )
    return stage.astype(np.int8)


def attachment_path(rng: np.random.Generator, base: np.ndarray, n_years: int, drift: float = 0.25) -> np.ndarray:
    """Yearly attachment (members x years) as a random walk in logit space.

    The drift makes recent behaviour more informative than old behaviour.
    """
    steps = rng.normal(0.0, drift, size=(base.shape[0], n_years))
    steps[:, 0] = 0.0
    return sigmoid(logit(base)[:, None] + np.cumsum(steps, axis=1))


def dues_probability(attachment: np.ndarray, means: np.ndarray, paid_last_cycle: np.ndarray,
                     stage: np.ndarray) -> np.ndarray:
    """True probability of paying a dues cycle."""
    x = (
        -1.5
        + 3.2 * (attachment - 0.45)
        + 1.0 * (means - 0.5)
        + 1.7 * paid_last_cycle
        + STAGE_DUES_SHIFT[stage]
    )
    return sigmoid(x)


def open_probability(responsiveness: np.ndarray, attachment: np.ndarray) -> np.ndarray:
    """Probability that a human opens a delivered newsletter."""
    return np.clip(0.02 + 0.6 * responsiveness * (0.15 + 0.85 * attachment), 0.0, 0.95)


def click_probability(responsiveness: np.ndarray, attachment: np.ndarray) -> np.ndarray:
    """Probability of at least one click, given a human open."""
    return np.clip(0.05 + 0.40 * attachment * (0.4 + 0.6 * responsiveness), 0.0, 0.9)


def unsubscribe_probability(attachment: np.ndarray) -> np.ndarray:
    return 0.0004 + 0.004 * (1.0 - attachment) ** 2


def yearly_event_rate(attachment: np.ndarray, stage: np.ndarray) -> np.ndarray:
    """Expected event registrations per year."""
    stage_factor = np.array([1.2, 1.0, 0.7, 0.8, 0.9, 1.1])[stage]
    return 4.5 * attachment**2 * stage_factor


def attend_probability(attachment: np.ndarray) -> np.ndarray:
    return 0.55 + 0.4 * attachment


def vote_probability(attachment: np.ndarray) -> np.ndarray:
    return np.clip(0.02 + 0.55 * attachment**1.5, 0.0, 0.9)


def true_engagement(attachment: np.ndarray, responsiveness: np.ndarray) -> np.ndarray:
    """The engagement the pipeline should recover, 0-100."""
    return 100.0 * (0.7 * attachment + 0.3 * responsiveness * attachment / 0.6).clip(0, 1)


def reengagement_uplift(responsiveness: np.ndarray, attachment: np.ndarray) -> np.ndarray:
    """Additive change in the probability of re-engaging within 30 days when emailed."""
    return 0.02 + 0.12 * responsiveness * (1.0 - attachment)


def dues_reminder_uplift(responsiveness: np.ndarray, p_pay: np.ndarray) -> np.ndarray:
    """Additive change in the probability of paying this cycle when reminded."""
    return (0.04 + 0.20 * responsiveness) * p_pay * (1.0 - p_pay) * 2.0


def hash_uniform(*keys: np.ndarray | int | str) -> np.ndarray:
    """Deterministic uniforms in [0, 1) from integer keys (splitmix64), for common random numbers."""
    arrays = [np.asarray(k if not isinstance(k, str) else _str_key(k), dtype=np.uint64) for k in keys]
    x = np.zeros(np.broadcast(*arrays).shape, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for a in arrays:
            x = x ^ a
            x = x + np.uint64(0x9E3779B97F4A7C15)
            x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _str_key(text: str) -> int:
    value = 1469598103934665603
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return value
