"""The membership database the generator writes: the canonical contract's tables, re-exported.

The contract (alumni_orchestration/contracts/membership.py) defines them; the generator only writes to it.
"""

from __future__ import annotations

from alumni_orchestration.contracts.membership import MEMBERSHIP_TABLES, metadata

__all__ = ["MEMBERSHIP_TABLES", "metadata"]
