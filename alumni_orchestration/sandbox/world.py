"""The simulated recipients: how members react to what the sandbox sends. Pure and deterministic.

Draws come from hashes of (seed, message, purpose), never from shared RNG state, so a message's
fate does not depend on what else was sent. Dues payments use common random numbers with the
generator: a member pays cycle C if u(seed, member, C) < p(C) (+ the reminder's uplift when reminded).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alumni_orchestration.synthetic.behaviour import hash_uniform

SITE = "https://www.anciens-exemple.fr"


@dataclass(frozen=True)
class Recipient:
    member_id: int
    email: str
    first_name: str
    last_name: str
    graduation_year: str
    machine_opener: bool
    open_prob: float
    click_prob: float
    unsubscribe_prob: float
    bounce_prob: float
    reengagement_uplift: float
    dues_reminder_uplift: float
    dues_amount_eur: float
    dues_tier: str
    top_topics: tuple[str, ...]


def load_recipients(data_dir: Path) -> dict[str, Recipient]:
    """Recipients by normalised email, from the generator's ground truth (the sandbox is the world)."""
    path = data_dir / "ground_truth" / "members.csv"
    if not path.exists():
        return {}
    names: dict[int, tuple[str, str, str]] = {}
    db = data_dir / "membership.sqlite"
    if db.exists():
        import sqlite3

        with sqlite3.connect(db) as conn:
            names = {row[0]: (row[1], row[2], str(row[3])) for row in
                     conn.execute("select member_id, first_name, last_name, graduation_year from members")}
    out = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if not row["email"]:
                continue
            member_id = int(row["member_id"])
            first, last, promo = names.get(member_id, ("", "", ""))
            out[row["email"].strip().lower()] = Recipient(
                member_id=member_id, email=row["email"], first_name=first, last_name=last, graduation_year=promo,
                machine_opener=row["machine_opener"] == "1", open_prob=float(row["open_prob"]),
                click_prob=float(row["click_prob"]), unsubscribe_prob=float(row["unsubscribe_prob"]),
                bounce_prob=float(row["bounce_prob"]), reengagement_uplift=float(row["reengagement_uplift"]),
                dues_reminder_uplift=float(row["dues_reminder_uplift"]), dues_amount_eur=float(row["dues_amount_eur"]),
                dues_tier=row["dues_tier"], top_topics=tuple(t for t in row["top_topics"].split(";") if t),
            )
    return out


def load_dues_truth(data_dir: Path) -> dict[tuple[int, int], tuple[float, int]]:
    path = data_dir / "ground_truth" / "dues_probabilities.csv"
    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        return {(int(r["member_id"]), int(r["dues_year"])): (float(r["p_pay"]), int(r["paid"]))
                for r in csv.DictReader(handle)}


def uniform(*parts: Any) -> float:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def reactions(seed: int, message: dict[str, Any], recipient: Recipient | None,
              dues_truth: dict[tuple[int, int], tuple[float, int]]) -> tuple[list[dict[str, Any]], dict | None]:
    """Webhook events (with due times) for one sent message, and a dues payment if one follows."""
    msg_id, sent_at = message["sg_message_id"], int(message["sent_at"])
    base = {"email": message["email"], "sg_message_id": msg_id, "category": message.get("categories") or [],
            **{k: str(v) for k, v in (message.get("custom_args") or {}).items()}}
    events: list[dict[str, Any]] = []

    def add(kind: str, at: int, **extra: Any) -> None:
        events.append({**base, "event": kind, "timestamp": int(at), "sg_event_id": f"{msg_id}-{kind[:2]}{len(events)}",
                       **extra})

    add("processed", sent_at)
    if recipient is None or uniform(seed, msg_id, "bounce") < recipient.bounce_prob:
        add("bounce", sent_at + 20, type="bounce", status="5.1.1",
            reason="550 5.1.1 The email account that you tried to reach does not exist")
        return events, None
    delivered = sent_at + 5 + int(uniform(seed, msg_id, "delay") * 60)
    add("delivered", delivered, response="250 OK")
    if recipient.machine_opener:
        add("open", delivered + 30, sg_machine_open=True, useragent="Mozilla/5.0", ip="17.58.0.1")
    categories = set(base["category"])
    lift = recipient.reengagement_uplift if "reengagement" in categories else 0.0
    opened = uniform(seed, msg_id, "open") < min(1.0, recipient.open_prob + lift)
    if opened:
        opened_at = delivered + int(uniform(seed, msg_id, "open-delay") * 86400)
        add("open", opened_at, sg_machine_open=False, useragent="Mozilla/5.0 (Windows NT 10.0)", ip="90.12.0.1")
        click_given_open = recipient.click_prob / max(recipient.open_prob, 1e-6)
        if uniform(seed, msg_id, "click") < min(1.0, click_given_open + lift):
            topics = recipient.top_topics or ("carriere",)
            topic = topics[int(uniform(seed, msg_id, "topic") * len(topics))]
            add("click", opened_at + 40, url=f"{SITE}/articles/{topic}/campagne?utm_campaign={base.get('campaign_id', '')}",
                url_offset={"index": 0, "type": "html"}, useragent="Mozilla/5.0", ip="90.12.0.1")
        group = (message.get("asm") or {}).get("group_id")
        if group and uniform(seed, msg_id, "unsubscribe") < recipient.unsubscribe_prob:
            add("group_unsubscribe", opened_at + 90, asm_group_id=int(group), useragent="Mozilla/5.0", ip="90.12.0.1")
    payment = None
    if "dues_reminder" in categories:
        cycle = int(str(base.get("cycle") or "0")[:4]) or None  # "2026" or a reminder step, "2026-r2"
        if cycle:
            p, _ = dues_truth.get((recipient.member_id, cycle), (0.0, 0))
            u = float(hash_uniform(seed, recipient.member_id, cycle))
            if reminded_to_pay(p, u, recipient.dues_reminder_uplift):
                payment = {"member_id": recipient.member_id, "cycle": cycle,
                           "paid_at": delivered + 86400 + int(uniform(seed, msg_id, "pay") * 4 * 86400)}
    return events, payment


def reminded_to_pay(p_pay: Any, u: Any, uplift: Any) -> Any:
    """Whether a delivered dues reminder makes a member pay the cycle: the member's common random number u
    lies in [p_pay, p_pay + uplift), i.e. they would not have paid without it and do with it. Scalars or arrays."""
    import numpy as np

    return (p_pay <= u) & (u < np.minimum(1.0, np.add(p_pay, uplift)))


def reminder_effect(p_pay: Any, u: Any, uplift: Any, bounce_prob: Any) -> Any:
    """Each member's true effect of a dues reminder on paying the cycle, as `reactions` simulates it:
    `reminded_to_pay`, if the message is not bounced."""
    import numpy as np

    p, u = np.asarray(p_pay, dtype=float), np.asarray(u, dtype=float)
    return reminded_to_pay(p, u, np.asarray(uplift, dtype=float)) * (1.0 - np.asarray(bounce_prob))


def true_reminder_effects(data_dir: Path) -> Any:
    """Each member's true effect of one delivered dues reminder on paying each dues year of the simulated
    world (a DataFrame member_id, dues_year, true_effect). Members without an email in the world never
    receive the message: their effect is 0. An audience's true uplift is the mean over its members."""
    import json

    import numpy as np
    import pandas as pd

    seed = int(json.loads((data_dir / "manifest.json").read_text())["config"]["seed"])
    truth = data_dir / "ground_truth"
    members = pd.read_csv(truth / "members.csv", usecols=["member_id", "email", "bounce_prob", "dues_reminder_uplift"],
                          dtype={"email": str}).set_index("member_id")
    dues = pd.read_csv(truth / "dues_probabilities.csv", usecols=["member_id", "dues_year", "p_pay"])
    frames = []
    for dues_year, year in dues.groupby("dues_year"):
        ids = members.index.to_numpy(dtype=np.int64)
        p_pay = year.set_index("member_id").p_pay.reindex(ids).fillna(0.0).to_numpy()
        reachable = members.email.fillna("").str.strip().ne("").to_numpy()
        effect = reminder_effect(p_pay, hash_uniform(seed, ids.astype(np.uint64), int(dues_year)),
                                 members.dues_reminder_uplift.fillna(0.0).to_numpy(),
                                 members.bounce_prob.fillna(1.0).to_numpy())
        frames.append(pd.DataFrame({"member_id": ids, "dues_year": int(dues_year), "true_effect": effect * reachable}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["member_id", "dues_year", "true_effect"])


def true_reminder_uplift(data_dir: Path, member_ids: Any, dues_year: int) -> float:
    """The simulated world's true uplift of one dues reminder on paying `dues_year`, averaged over an
    audience (both arms): what a campaign's uplift estimate should find. Members the world does not
    know have no effect."""
    import numpy as np

    ids = np.asarray(member_ids, dtype=np.int64)
    if not ids.size:
        return float("nan")
    effects = true_reminder_effects(data_dir)
    year = effects[effects.dues_year == dues_year].set_index("member_id").true_effect
    return float(year.reindex(ids).fillna(0.0).mean())
