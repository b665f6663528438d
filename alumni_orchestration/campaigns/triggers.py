"""Score-threshold triggers with hysteresis, between consecutive score snapshots.

A downward trigger fires for a member whose score crosses below `threshold` between the previous
and the current snapshot, provided the member is *armed*: since their last firing (or ever), their
score has been at or above `threshold + margin`. Hovering around the threshold therefore fires
once, not at every wiggle. Upward triggers mirror this.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Trigger:
    score: str
    direction: str  # "down" or "up"
    threshold: float
    margin: float

    def __post_init__(self) -> None:
        if self.direction not in ("down", "up"):
            raise ValueError(f"direction must be 'down' or 'up', not {self.direction!r}")


def crossings(history: pd.DataFrame, trigger: Trigger, previous_as_of, current_as_of,
              last_fired: pd.Series | None = None, armed_check: bool = True) -> pd.DataFrame:
    """Members whose score crossed between two snapshots.

    history: member_id, as_of, <score> for every snapshot up to current_as_of.
    last_fired: member_id -> as_of of the trigger's last firing for that member (if any).
    armed_check=False: every member that crossed, armed or not.
    Returns member_id, previous, current.
    """
    h = history[["member_id", "as_of", trigger.score]].rename(columns={trigger.score: "score"})
    prev = h[h.as_of == previous_as_of].set_index("member_id").score
    cur = h[h.as_of == current_as_of].set_index("member_id").score
    both = pd.DataFrame({"previous": prev, "current": cur}).dropna()
    if trigger.direction == "down":
        crossed = (both.previous >= trigger.threshold) & (both.current < trigger.threshold)
        in_band = h.score >= trigger.threshold + trigger.margin
    else:
        crossed = (both.previous <= trigger.threshold) & (both.current > trigger.threshold)
        in_band = h.score <= trigger.threshold - trigger.margin
    armed_since = h[in_band & (h.as_of <= previous_as_of)].groupby("member_id").as_of.max()
    fired = last_fired if last_fired is not None else pd.Series(dtype="object")
    candidates = both[crossed]
    if not armed_check:
        return candidates.rename_axis("member_id").reset_index()[["member_id", "previous", "current"]]
    armed_at = armed_since.reindex(candidates.index)
    fired_at = fired.reindex(candidates.index)
    armed = armed_at.notna() & (fired_at.isna() | (armed_at > fired_at))
    out = candidates[armed.to_numpy()].reset_index()
    return out.rename(columns={"index": "member_id"})[["member_id", "previous", "current"]]
