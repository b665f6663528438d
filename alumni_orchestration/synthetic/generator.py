"""Streaming generator of a synthetic French alumni association (see synthetic/README.md).

Members are simulated in fixed-size chunks: each chunk draws its latent traits, then everything
they do (dues, emails, events, groups, votes, volunteering), and appends it to the outputs.
Random streams are keyed by (seed, chunk, purpose), so the same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import shutil
import unicodedata
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sqlalchemy import create_engine

from alumni_orchestration.contracts.membership import metadata
from alumni_orchestration.settings import (
    DEFAULT_EVENTBRITE_ORGANIZATION_ID,
    DEFAULT_HELLOASSO_ORGANIZATION_SLUG,
)
from alumni_orchestration.synthetic import behaviour as bh
from alumni_orchestration.synthetic import taxonomy as tx
from alumni_orchestration.synthetic.timeutil import (
    day_number,
    iso_dates,
    iso_paris,
    iso_utc,
    paris_day_numbers,
    paris_local_to_unix,
)

ORG_SLUG = DEFAULT_HELLOASSO_ORGANIZATION_SLUG
EVENTBRITE_ORG_ID = DEFAULT_EVENTBRITE_ORGANIZATION_ID
NEWSLETTER_GROUP = (1, "Lettre d'information")
ASSOCIATION_GROUP = (2, "Vie de l'association")
SITE = "https://www.anciens-exemple.fr"
CHUNK_SIZE = 10_000


@dataclass(frozen=True)
class GeneratorConfig:
    members: int = 2000
    years: int = 3
    seed: int = 42
    wart_rate: float = 0.02
    end_date: str | None = None  # last simulated day; default: yesterday
    chunk_size: int = CHUNK_SIZE

    def period(self) -> tuple[dt.date, dt.date]:
        end = dt.date.fromisoformat(self.end_date) if self.end_date else dt.date.today() - dt.timedelta(days=1)
        try:
            start = end.replace(year=end.year - self.years) + dt.timedelta(days=1)
        except ValueError:  # 29 February
            start = end.replace(year=end.year - self.years, day=28) + dt.timedelta(days=1)
        return start, end


@dataclass
class Catalogue:
    """What all members share: newsletters and calls, events, groups, general assemblies."""

    sends: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    assemblies: list[dict[str, Any]] = field(default_factory=list)


def _registration_options(key: int, price_cents: int) -> list[dict[str, Any]]:
    """A paid registration's extras, as HelloAsso's item options (name, amount in cents, priceCategory,
    isRequired, customFields, optionId): a dinner for one in four, drawn from the key so no random draw moves."""
    if not price_cents or key % 4:
        return []
    return [{"name": "Dîner", "amount": 1500, "priceCategory": "Fixed", "isRequired": False, "customFields": [],
             "optionId": 501}]


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in _ascii(text).lower()).split())


class Outputs:
    """Every file the generator appends to, opened once per run."""

    def __init__(self, out: Path, membership_url: str | None) -> None:
        self.out = out
        self.providers = out / "providers"
        self.truth = out / "ground_truth"
        for sub in ("sendgrid/events", "sendgrid/suppressions", "eventbrite", "helloasso"):
            (self.providers / sub).mkdir(parents=True, exist_ok=True)
        self.truth.mkdir(parents=True, exist_ok=True)
        self.membership_url = membership_url or f"sqlite:///{(out / 'membership.sqlite').as_posix()}"
        self.engine = create_engine(self.membership_url)
        metadata.drop_all(self.engine)
        metadata.create_all(self.engine)
        self.files: dict[str, io.BufferedWriter] = {}
        self.counts: Counter[str] = Counter()
        self.warts: Counter[str] = Counter()
        self.suppressions: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def file(self, relative: str) -> io.BufferedWriter:
        handle = self.files.get(relative)
        if handle is None:
            path = self.out / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.files[relative] = open(path, "wb")  # noqa: SIM115 - closed in close()
        return handle

    def write_csv_header(self, relative: str, header: list[str]) -> None:
        self.file(relative).write((",".join(header) + "\n").encode())

    def append_csv(self, relative: str, rows: list[tuple]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        self.file(relative).write(buf.getvalue().encode("utf-8"))

    def append_jsonl(self, relative: str, objects: list[dict[str, Any]]) -> None:
        self.file(relative).write(b"".join(orjson.dumps(o, option=orjson.OPT_APPEND_NEWLINE) for o in objects))

    def insert(self, table_name: str, rows: list[tuple]) -> None:
        if not rows:
            return
        table = metadata.tables[table_name]
        columns = [c.name for c in table.columns]
        self.counts[table_name] += len(rows)
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                buf = io.StringIO()
                csv.writer(buf, lineterminator="\n").writerows(
                    ["\\N" if v is None else v for v in row] for row in rows
                )
                buf.seek(0)
                cursor = conn.connection.cursor()
                cursor.copy_expert(
                    f'COPY "{table_name}" ({", ".join(columns)}) FROM STDIN WITH (FORMAT csv, NULL \'\\N\')', buf
                )
            else:
                marks = ", ".join("?" for _ in columns)
                conn.exec_driver_sql(f'INSERT INTO "{table_name}" ({", ".join(columns)}) VALUES ({marks})', rows)

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()
        self.engine.dispose()


# --------------------------------------------------------------------------------------------
# The shared catalogue
# --------------------------------------------------------------------------------------------

def build_catalogue(config: GeneratorConfig, rng: np.random.Generator) -> Catalogue:
    start, end = config.period()
    cat = Catalogue()
    topic_popularity = np.array([1.3, 1.2, 1.4, 1.1, 0.9, 0.8, 0.8, 0.9, 0.8, 0.6, 1.5, 0.7])
    topic_popularity /= topic_popularity.sum()

    # Newsletters: first Tuesday of each month at 10:00; dues calls: 15 January at 10:30.
    month = dt.date(start.year, start.month, 1)
    while month <= end:
        first_tuesday = month + dt.timedelta(days=(1 - month.weekday()) % 7)
        if start <= first_tuesday <= end:
            topics = rng.choice(len(tx.TOPICS), size=4, replace=False, p=topic_popularity)
            cat.sends.append({
                "kind": "newsletter", "campaign_id": f"newsletter-{first_tuesday:%Y-%m}",
                "day": day_number(first_tuesday), "seconds": 10 * 3600, "topics": sorted(topics.tolist()),
                "group": NEWSLETTER_GROUP,
            })
        if month.month == 1 and start <= month.replace(day=15) <= end:
            cat.sends.append({
                "kind": "dues_call", "campaign_id": f"appel-cotisation-{month.year}",
                "day": day_number(month.replace(day=15)), "seconds": 10 * 3600 + 1800, "topics": [],
                "group": ASSOCIATION_GROUP, "cycle": month.year,
            })
        month = dt.date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    cat.sends.sort(key=lambda s: s["day"])

    kinds = [("Afterwork", 0, 0.35), ("Conférence", 10, 0.25), ("Webinaire", 0, 0.2),
             ("Dîner-débat", 45, 0.1), ("Gala annuel", 85, 0.03), ("Tournoi", 15, 0.07)]
    kind_p = np.array([k[2] for k in kinds])
    kind_p /= kind_p.sum()
    city_p = np.array(tx.CITY_WEIGHTS) / sum(tx.CITY_WEIGHTS)
    per_year = max(10, round(config.members / 80))
    first_day, last_day = day_number(start), day_number(end) + 60  # a few upcoming events too
    n_events = int(per_year * (last_day - first_day) / 365)
    days = np.sort(rng.integers(first_day, last_day, size=n_events))
    for i, day in enumerate(days.tolist()):
        kind, price, _ = kinds[int(rng.choice(len(kinds), p=kind_p))]
        topic = int(rng.choice(len(tx.TOPICS), p=topic_popularity))
        if kind == "Tournoi":
            topic = tx.TOPICS.index("sport")
        city, region = ("En ligne", "En ligne") if kind == "Webinaire" else tx.CITIES[int(rng.choice(len(tx.CITIES), p=city_p))]
        platform = "eventbrite" if rng.random() < 0.55 else "helloasso"
        title = f"{kind} {tx.TOPICS[topic].replace('-', ' ').title()} — {city}"
        cat.events.append({
            "index": i, "platform": platform, "id": f"{700000000 + i}", "slug": f"{_slug(title)}-{i}",
            "title": title, "kind": kind, "topic": topic, "city": city, "region": region, "day": day,
            "start_ts": int(paris_local_to_unix(np.array([day]), np.array([19 * 3600]))[0]),
            "price_eur": price,
        })

    n_groups = max(10, config.members // 250)
    for g in range(n_groups):
        kind = ("professional", "regional", "club")[g % 3]
        if kind == "regional":
            region = tx.CITIES[g % len(tx.CITIES)][1]
            name, topic = f"Groupe régional {region}", ""
        else:
            topic_name = tx.TOPICS[(g * 7) % len(tx.TOPICS)]
            prefix = "Groupe professionnel" if kind == "professional" else "Club"
            name, topic = f"{prefix} {topic_name.replace('-', ' ').title()} {g // len(tx.TOPICS) + 1}", topic_name
        cat.groups.append({"group_id": g + 1, "name": name, "kind": kind, "topic": topic})

    for year in range(start.year, end.year + 1):
        held = dt.date(year, 6, 14)
        held -= dt.timedelta(days=(held.weekday() - 5) % 7)  # a Saturday
        if start <= held <= end:
            cat.assemblies.append({
                "assembly_id": year, "held_on": held, "title": f"Assemblée générale ordinaire {year}",
                "kind": "ordinary", "voting_opens_on": held - dt.timedelta(days=14), "voting_closes_on": held,
            })
    return cat


# --------------------------------------------------------------------------------------------
# One chunk of members
# --------------------------------------------------------------------------------------------

@dataclass
class Chunk:
    ids: np.ndarray
    first: list[str]
    last: list[str]
    civility: list[str]
    email: list[str | None]  # as stored in the membership base (may be messy)
    email_clean: list[str]  # the address mail actually goes to ('' = none or invalid)
    email_invalid: np.ndarray
    secondary: list[str | None]
    grad: np.ndarray
    birth_day: np.ndarray
    stage: np.ndarray
    region: list[str]
    city: list[str]
    sector: np.ndarray
    prefs: np.ndarray
    attachment: np.ndarray  # members x cycles
    responsiveness: np.ndarray
    means: np.ndarray
    machine_opener: np.ndarray
    consent_email: np.ndarray
    consent_newsletter: np.ndarray
    joined_day: np.ndarray
    left_day: np.ndarray  # large when never left
    deceased: np.ndarray


NEVER = 10**7  # a day number after any simulated day
TS_NEVER = 2**62  # a unix time after any simulated instant


def _draw_members(config: GeneratorConfig, rng: np.random.Generator, ids: np.ndarray, cycles: list[int]) -> Chunk:
    start, end = config.period()
    n = ids.size
    female = rng.random(n) < 0.47
    first_f = rng.integers(0, len(tx.FIRST_NAMES_F), n)
    first_m = rng.integers(0, len(tx.FIRST_NAMES_M), n)
    first = [tx.FIRST_NAMES_F[a] if f else tx.FIRST_NAMES_M[b] for f, a, b in zip(female, first_f, first_m, strict=True)]
    last = [tx.LAST_NAMES[i] for i in rng.integers(0, len(tx.LAST_NAMES), n)]
    civility = ["Mme" if f else "M." for f in female]

    student = rng.random(n) < 0.07
    since = np.minimum(rng.exponential(17.0, n), 58).astype(int)
    grad = np.where(student, end.year + rng.integers(1, 4, n), end.year - since)
    age_at_grad = np.clip(rng.normal(23.5, 1.3, n), 21, 30) + (rng.random(n) < 0.08) * 7
    birth_day = np.array([day_number(dt.date(int(g), 1, 1)) for g in (grad - age_at_grad).astype(int)])
    birth_day = birth_day + rng.integers(0, 365, n)
    age = (day_number(end) - birth_day) / 365.25
    stage = bh.life_stage(age, grad, end.year)

    city_idx = rng.choice(len(tx.CITIES), size=n, p=np.array(tx.CITY_WEIGHTS) / sum(tx.CITY_WEIGHTS))
    sector = rng.integers(0, len(tx.SECTORS), n)
    alpha = np.full((n, len(tx.TOPICS)), 0.35)
    for s, name in enumerate(tx.SECTORS):
        for topic in tx.SECTOR_TOPICS[name]:
            alpha[sector == s, tx.TOPICS.index(topic)] += 1.2
    prefs = rng.gamma(alpha)
    prefs /= prefs.sum(axis=1, keepdims=True)

    base = np.clip(rng.beta(1.6, 2.4, n) + bh.STAGE_ATTACHMENT_SHIFT[stage], 0.02, 0.98)
    attachment = bh.attachment_path(rng, base, len(cycles))
    responsiveness = rng.beta(2.0, 3.0, n)
    means = np.clip(bh.STAGE_MEANS[stage] + rng.normal(0, 0.15, n), 0.02, 0.98)

    graduation_join = np.array([day_number(dt.date(int(min(g, end.year + 3)) - (3 if s else 0), 7 if not s else 9, 1))
                                for g, s in zip(grad, student, strict=True)])
    late_join = rng.random(n) < 0.3
    joined_day = graduation_join + late_join * rng.integers(0, 3650, n)
    joined_day = np.where(student, np.minimum(joined_day, day_number(end) - rng.integers(0, 700, n)), joined_day)
    joined_day = np.minimum(joined_day, day_number(end) - 1)

    first_day = day_number(start)
    span = day_number(end) - first_day
    left_day = np.full(n, NEVER)
    deceased = (stage == 5) & (rng.random(n) < 0.03 + 0.002 * np.clip(age - 65, 0, None))
    resigned = ~deceased & (rng.random(n) < 0.05)
    leaving = deceased | resigned
    left_day[leaving] = first_day + rng.integers(30, span, leaving.sum())
    left_day = np.maximum(left_day, joined_day + 30)

    wart = config.wart_rate
    emails: list[str | None] = []
    clean: list[str] = []
    invalid = np.zeros(n, dtype=bool)
    secondary: list[str | None] = []
    has_secondary = rng.random(n) < 0.35
    domains = rng.integers(0, len(tx.PERSONAL_DOMAINS), n)
    work = rng.integers(0, len(tx.WORK_DOMAINS), n)
    roll = rng.random(n)
    for i in range(n):
        local = f"{_slug(first[i]).replace('-', '')}.{_slug(last[i]).replace('-', '')}{int(ids[i])}"
        address = f"{local}@{tx.PERSONAL_DOMAINS[domains[i]]}"
        if roll[i] < wart / 2:  # missing
            emails.append(None)
            clean.append("")
        elif roll[i] < wart:  # invalid
            broken = address.replace("@", "") if i % 2 else address.rsplit(".", 1)[0]
            emails.append(broken)
            clean.append(broken)
            invalid[i] = True
        elif roll[i] < 2 * wart:  # case and whitespace
            emails.append(f" {address[0].upper()}{address[1:]} ")
            clean.append(address)
        else:
            emails.append(address)
            clean.append(address)
        secondary.append(
            f"{_slug(first[i])[0]}.{_slug(last[i]).replace('-', '')}{int(ids[i])}@{tx.WORK_DOMAINS[work[i]]}"
            if has_secondary[i] else None
        )
    consent_email = rng.random(n) < 0.93
    consent_newsletter = consent_email & (rng.random(n) < 0.85)
    return Chunk(
        ids=ids, first=first, last=last, civility=civility, email=emails, email_clean=clean,
        email_invalid=invalid, secondary=secondary, grad=grad, birth_day=birth_day, stage=stage,
        region=[tx.CITIES[i][1] for i in city_idx], city=[tx.CITIES[i][0] for i in city_idx],
        sector=sector, prefs=prefs, attachment=attachment, responsiveness=responsiveness, means=means,
        machine_opener=rng.random(n) < 0.4, consent_email=consent_email, consent_newsletter=consent_newsletter,
        joined_day=joined_day, left_day=left_day, deceased=deceased,
    )


class AssociationWriter:
    def __init__(self, out: Path, config: GeneratorConfig, membership_url: str | None) -> None:
        self.config = config
        self.start, self.end = config.period()
        self.first_day, self.last_day = day_number(self.start), day_number(self.end)
        self.end_ts = int(paris_local_to_unix(np.array([self.last_day + 1]), np.array([0]))[0])
        # Dues are simulated from a burn-in of a few cycles so that paying habits are in their steady
        # state; the base records them from the cycle before the period. The last: the hidden next cycle.
        self.cycles = list(range(self.start.year - 4, self.end.year + 2))
        self.first_recorded_cycle = self.start.year - 1
        self.o = Outputs(out, membership_url)
        self.cat = build_catalogue(config, np.random.default_rng([config.seed, 0]))
        self.events_by_topic_year: dict[tuple[int, int], np.ndarray] = {}
        for topic in range(len(tx.TOPICS)):
            for year in range(self.start.year, self.end.year + 2):
                idx = [e["index"] for e in self.cat.events
                       if e["topic"] == topic and dt.date.fromordinal(719163 + e["day"]).year == year]
                self.events_by_topic_year[(topic, year)] = np.array(idx, dtype=np.int64)
        self.vote_id = 0
        self.payment_id = 0
        self.role_id = 0
        self.ha_item_id = 0
        self._bad_counter = 0

    def rng(self, chunk: int, purpose: int) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, chunk + 1, purpose])

    # ---- outputs that do not depend on members ----
    def write_catalogue(self) -> None:
        o = self.o
        o.insert("groups", [(g["group_id"], g["name"], g["kind"], g["topic"] or None) for g in self.cat.groups])
        o.insert("general_assemblies", [
            (a["assembly_id"], a["held_on"].isoformat(), a["title"], a["kind"], a["voting_opens_on"].isoformat(),
             a["voting_closes_on"].isoformat()) for a in self.cat.assemblies])
        eb_events, ha_forms = [], []
        for e in self.cat.events:
            created = e["start_ts"] - 45 * 86400
            changed = min(e["start_ts"] + 86400, self.end_ts - 3600)
            topic = tx.TOPICS[e["topic"]]
            if e["platform"] == "eventbrite":
                start_utc, end_utc = iso_utc(np.array([e["start_ts"], e["start_ts"] + 3 * 3600]))
                local_start, local_end = (s[:-6] for s in iso_paris(np.array([e["start_ts"], e["start_ts"] + 3 * 3600])))
                eb_events.append({
                    "id": e["id"], "name": {"text": e["title"], "html": e["title"]},
                    "summary": f"{e['kind']} organisé par l'association. #{topic}",
                    "description": {"text": f"{e['title']}. #{topic}"},
                    "url": f"https://www.eventbrite.fr/e/{e['slug']}-tickets-{e['id']}",
                    "start": {"timezone": "Europe/Paris", "local": local_start, "utc": start_utc},
                    "end": {"timezone": "Europe/Paris", "local": local_end, "utc": end_utc},
                    "organization_id": EVENTBRITE_ORG_ID, "created": iso_utc(np.array([created]))[0],
                    "changed": iso_utc(np.array([changed]))[0], "status": "completed" if e["start_ts"] < self.end_ts else "live",
                    "currency": "EUR", "online_event": e["city"] == "En ligne", "is_free": e["price_eur"] == 0,
                    "venue": {"address": {"city": e["city"], "region": e["region"], "country": "FR"}},
                })
            else:
                ha_forms.append({
                    "formSlug": e["slug"], "formType": "Event", "title": e["title"],
                    "description": f"{e['title']}. #{topic}", "organizationSlug": ORG_SLUG, "state": "Public",
                    "startDate": iso_paris(np.array([e["start_ts"]]))[0],
                    "endDate": iso_paris(np.array([e["start_ts"] + 3 * 3600]))[0],
                    "place": {"city": e["city"], "country": "FRA"},
                    "meta": {"createdAt": iso_paris(np.array([created]))[0], "updatedAt": iso_paris(np.array([changed]))[0]},
                    "url": f"https://www.helloasso.com/associations/{ORG_SLUG}/evenements/{e['slug']}",
                })
        for cycle in self.cycles[self.cycles.index(self.first_recorded_cycle) + 1:-1]:
            opens = int(paris_local_to_unix(np.array([day_number(dt.date(cycle - 1, 12, 1))]), np.array([9 * 3600]))[0])
            ha_forms.append({
                "formSlug": f"adhesion-{cycle}", "formType": "Membership", "title": f"Cotisation {cycle}",
                "description": f"Adhésion à l'association pour l'année {cycle}.", "organizationSlug": ORG_SLUG,
                "state": "Public", "startDate": iso_paris(np.array([opens]))[0],
                "endDate": iso_paris(np.array([opens + 395 * 86400]))[0],
                "meta": {"createdAt": iso_paris(np.array([opens - 86400]))[0], "updatedAt": iso_paris(np.array([opens]))[0]},
                "url": f"https://www.helloasso.com/associations/{ORG_SLUG}/adhesions/adhesion-{cycle}",
            })
        o.append_jsonl("providers/eventbrite/events.jsonl", eb_events)
        o.append_jsonl("providers/helloasso/forms.jsonl", ha_forms)
        o.counts["eventbrite_events"] = len(eb_events)
        o.counts["helloasso_forms"] = len(ha_forms)
        (o.providers / "eventbrite/organization.json").write_text(json.dumps({"id": EVENTBRITE_ORG_ID, "name": "Association des anciens"}))
        (o.providers / "helloasso/organization.json").write_text(json.dumps({"organizationSlug": ORG_SLUG, "name": "Association des anciens"}))
        groups = [{"id": gid, "name": name, "description": name, "is_default": False}
                  for gid, name in (NEWSLETTER_GROUP, ASSOCIATION_GROUP)]
        (o.providers / "sendgrid/asm_groups.json").write_text(json.dumps(groups, ensure_ascii=False))
        o.write_csv_header("ground_truth/members.csv", MEMBER_TRUTH_COLUMNS)
        o.write_csv_header("ground_truth/dues_probabilities.csv", ["member_id", "dues_year", "p_pay", "paid"])
        o.write_csv_header("ground_truth/topic_preferences.csv", ["member_id", "topic", "weight"])
        o.write_csv_header("ground_truth/email_owners.csv", ["email", "member_id"])
        o.write_csv_header("ground_truth/attributions.csv", ["source", "record_key", "member_id"])
        o.write_csv_header("ground_truth/duplicates.csv", ["member_id", "duplicate_of"])
        # Touch the provider files so an empty association still has them.
        for rel in ("providers/eventbrite/attendees.jsonl", "providers/helloasso/orders.jsonl"):
            o.file(rel)

    # ---- one chunk ----
    def write_chunk(self, chunk_index: int, ids: np.ndarray) -> None:
        rng = self.rng(chunk_index, 1)
        c = _draw_members(self.config, rng, ids, self.cycles)
        paid, p_pay, tier, paid_day = self._dues(chunk_index, c)
        status = self._status(c, paid, tier)
        self._members(chunk_index, c, status, tier)
        self._dues_rows(chunk_index, c, paid, tier, paid_day)
        self._emails(chunk_index, c)
        self._events(chunk_index, c)
        self._groups_votes_roles(chunk_index, c, paid, paid_day)
        self._truth(c, paid, p_pay, tier, status)

    def _dues(self, chunk_index: int, c: Chunk):
        n, k = c.ids.size, len(self.cycles)
        rng = self.rng(chunk_index, 2)
        paid = np.zeros((n, k), dtype=bool)
        p_pay = np.zeros((n, k))
        tier = np.empty((n, k), dtype=object)
        paid_day = np.full((n, k), NEVER, dtype=np.int64)
        lifetime_member = (c.stage >= 3) & (c.means > 0.65) & (rng.random(n) < 0.12)
        lifetime_done = np.zeros(n, dtype=bool)
        habit = rng.random(n) < 0.4 + 0.5 * c.attachment[:, 0]
        for j, cycle in enumerate(self.cycles):
            opens = day_number(dt.date(cycle, 1, 1))
            stage = bh.life_stage((opens - c.birth_day) / 365.25, c.grad, cycle)
            eligible = (c.joined_day <= opens + 300) & (c.left_day > opens) & ~lifetime_done
            last = paid[:, j - 1] if j else habit
            # Renewal reflects the engagement of the year just ended, which the pipeline can observe.
            p = bh.dues_probability(c.attachment[:, max(j - 1, 0)], c.means, last.astype(float), stage)
            u = bh.hash_uniform(self.config.seed, c.ids, cycle)
            p_pay[:, j] = np.where(eligible, p, 0.0)
            paid[:, j] = eligible & (u < p)
            t = np.where(stage == 0, "student", np.where((stage == 1) | (c.means < 0.3), "reduced", "annual"))
            t = np.where(lifetime_member & paid[:, j], "lifetime", t)
            tier[:, j] = t
            lateness = 20 + 90 * (1.2 - c.attachment[:, j])  # attached members pay early
            day = opens + np.minimum(rng.exponential(lateness), 364).astype(np.int64) - 20 * (rng.random(n) < 0.3)
            day = np.maximum(day, c.joined_day)
            paid_day[:, j] = np.where(paid[:, j], day, NEVER)
            paid[:, j] &= paid_day[:, j] < c.left_day
            lifetime_done |= paid[:, j] & (tier[:, j] == "lifetime")
        return paid, p_pay, tier, paid_day

    def _status(self, c: Chunk, paid: np.ndarray, tier: np.ndarray) -> list[str]:
        cur = len(self.cycles) - 2  # the current cycle
        cur_seen = paid[:, cur] & (np.zeros(1) == 0)
        lifetime = (tier == "lifetime") & paid
        up_to_date = lifetime.any(axis=1) | paid[:, cur - 1] | cur_seen
        status = np.where(c.deceased & (c.left_day <= self.last_day), "deceased",
                          np.where(c.left_day <= self.last_day, "left", np.where(up_to_date, "active", "lapsed")))
        return status.tolist()

    def _members(self, chunk_index: int, c: Chunk, status: list[str], tier: np.ndarray) -> None:
        rng = self.rng(chunk_index, 3)
        n = c.ids.size
        noisy = c.prefs * rng.lognormal(0, 0.5, c.prefs.shape)
        order = np.argsort(-noisy, axis=1)
        n_declared = rng.choice([0, 1, 2, 3], size=n, p=[0.3, 0.2, 0.3, 0.2])
        jobs = rng.integers(0, len(tx.JOB_FUNCTIONS), n)
        programmes = rng.choice(len(tx.PROGRAMMES), size=n, p=[0.4, 0.1, 0.2, 0.1, 0.08, 0.08, 0.04])
        birth = iso_dates(c.birth_day)
        joined = iso_dates(c.joined_day)
        left = iso_dates(np.minimum(c.left_day, 0))
        updated = iso_dates(np.minimum(self.last_day, c.joined_day + rng.integers(0, 2000, n)))
        rows = []
        for i in range(n):
            declared = ";".join(tx.TOPICS[t] for t in order[i, : n_declared[i]])
            rows.append((
                int(c.ids[i]), c.civility[i], c.first[i], c.last[i], c.email[i], c.secondary[i], birth[i],
                int(c.grad[i]), tx.PROGRAMMES[programmes[i]], c.city[i], c.region[i], tx.JOB_FUNCTIONS[jobs[i]],
                tx.SECTORS[c.sector[i]], declared or None, int(c.consent_email[i]), int(c.consent_newsletter[i]),
                status[i], joined[i], left[i] if c.left_day[i] <= self.last_day else None, updated[i] + " 09:00:00",
            ))
        # Warts: the same person registered twice, the email differing only in case or spaces.
        dup = np.flatnonzero((rng.random(n) < self.config.wart_rate / 2) & np.array([e is not None for e in c.email])
                             & ~c.email_invalid)
        dup_rows = []
        for i in dup.tolist():
            new_id = int(c.ids[i]) + 5_000_000
            row = list(rows[i])
            row[0] = new_id
            row[4] = c.email_clean[i].upper() if i % 2 else f"{c.email_clean[i]}  "
            row[16] = "lapsed"
            dup_rows.append(tuple(row))
            self.o.append_csv("ground_truth/duplicates.csv", [(new_id, int(c.ids[i]))])
        self.o.warts["duplicate_member_email"] += len(dup_rows)
        self.o.warts["missing_email"] += sum(e is None for e in c.email)
        self.o.warts["invalid_email"] += int(c.email_invalid.sum())
        self.o.insert("members", rows + dup_rows)
        self.o.append_csv("ground_truth/email_owners.csv",
                          [(c.email_clean[i], int(c.ids[i])) for i in range(n) if c.email_clean[i]]
                          + [(c.secondary[i], int(c.ids[i])) for i in range(n) if c.secondary[i]])
        self.o.append_csv("ground_truth/topic_preferences.csv", [
            (int(c.ids[i]), tx.TOPICS[t], f"{c.prefs[i, t]:.6f}") for i in range(n) for t in range(len(tx.TOPICS))
        ])

    def _dues_rows(self, chunk_index: int, c: Chunk, paid: np.ndarray, tier: np.ndarray, paid_day: np.ndarray) -> None:
        rng = self.rng(chunk_index, 4)
        n = c.ids.size
        # Sticky channel per member: HelloAsso online, or recorded in the base (transfer, card, cheque, cash).
        channel = rng.choice(5, size=n, p=[0.45, 0.2, 0.12, 0.17, 0.06])
        methods = ("helloasso", "transfer", "card", "cheque", "cash")
        rows, orders, attributions = [], [], []
        wart = self.config.wart_rate
        for j, cycle in enumerate(self.cycles[:-1]):
            recorded = paid[:, j] & (paid_day[:, j] <= self.last_day)
            if cycle < self.first_recorded_cycle:  # older cycles: the base keeps only lifetime memberships
                recorded &= tier[:, j] == "lifetime"
            who = np.flatnonzero(recorded)
            days = paid_day[who, j]
            ts = paris_local_to_unix(days, rng.integers(8 * 3600, 22 * 3600, who.size))
            donation = rng.random(who.size) < 0.3 * c.means[who] * c.attachment[who, j]
            donation_eur = rng.choice([20, 30, 50, 100], size=who.size)
            roll = rng.random(who.size)
            for k, i in enumerate(who.tolist()):
                t = tier[i, j]
                amount = tx.DUES_AMOUNTS_EUR[t]
                method = methods[channel[i]]
                if method == "helloasso" and cycle >= self.start.year:
                    orders.append(self._membership_order(c, i, cycle, t, amount, int(ts[k]),
                                                         int(donation_eur[k]) if donation[k] else 0, attributions))
                    continue
                member_id = int(c.ids[i])
                paid_on = iso_dates(np.array([days[k]]))[0]
                if roll[k] < wart / 2:
                    member_id = 9_000_000 + self.payment_id  # orphan: unknown member
                    self.o.warts["orphan_payment"] += 1
                elif roll[k] < 3 * wart / 4:
                    paid_on = f"{cycle + 80}-{paid_on[5:]}" if k % 2 else iso_dates(np.array([c.birth_day[i] - 400]))[0]
                    self.o.warts["impossible_payment_date"] += 1
                self.payment_id += 1
                rows.append((self.payment_id, member_id, cycle, t, f"{amount:.2f}", paid_on,
                             "transfer" if method == "helloasso" else method))
        self.o.insert("dues_payments", rows)
        self.o.append_jsonl("providers/helloasso/orders.jsonl", orders)
        self.o.counts["helloasso_orders"] += len(orders)
        self.o.append_csv("ground_truth/attributions.csv", attributions)

    def _identity(self, c: Chunk, i: int, roll: float) -> tuple[str, str, str]:
        """(first name, last name, email) as a member types them into an event tool."""
        first, last = c.first[i], c.last[i]
        if roll < 0.6 and c.email_clean[i] and not c.email_invalid[i]:
            return first, last, c.email_clean[i]
        if roll < 0.75 and c.secondary[i]:
            return first, last, c.secondary[i]
        if roll < 0.85 and c.email_clean[i] and not c.email_invalid[i]:
            return first.upper() if roll < 0.8 else first, last, c.email_clean[i].capitalize()
        # An address the base does not know: only the name and the promo identify them.
        if roll < 0.93:
            first, last = _ascii(first), _ascii(last)
        return first, last, f"{_slug(first).replace('-', '')}{int(c.ids[i]) % 97}.{_slug(last)[:3]}@{tx.PERSONAL_DOMAINS[i % 5]}"

    def _membership_order(self, c: Chunk, i: int, cycle: int, t: str, amount: float, ts: int, donation: int,
                          attributions: list) -> dict[str, Any]:
        self.ha_item_id += 1
        order_id = 800_000_000 + self.ha_item_id
        first, last, email = self._identity(c, i, (self.ha_item_id * 0.6180339887) % 1)
        date = iso_paris(np.array([ts]))[0]
        items = [{"id": order_id * 10, "amount": int(amount * 100), "type": "Membership", "state": "Processed",
                  "name": f"Cotisation {cycle} — {t}", "user": {"firstName": first, "lastName": last},
                  "customFields": [{"name": "Email", "type": "TextInput", "answer": email},
                                   {"name": "Promo", "type": "TextInput", "answer": str(int(c.grad[i]))}]}]
        if donation:
            items.append({"id": order_id * 10 + 1, "amount": donation * 100, "type": "Donation", "state": "Processed",
                          "name": "Don", "user": {"firstName": first, "lastName": last}, "customFields": []})
        total = sum(it["amount"] for it in items)
        offline = (order_id % 23) == 0  # a payment's type is one of HelloAsso's Offline, Credit, Debit
        attributions.append(("helloasso_payer", str(order_id), int(c.ids[i])))
        for it in items:
            attributions.append(("helloasso_item", str(it["id"]), int(c.ids[i])))
        return {
            "id": order_id, "date": date, "formSlug": f"adhesion-{cycle}", "formType": "Membership",
            "organizationSlug": ORG_SLUG, "payer": {"email": email, "firstName": first, "lastName": last, "country": "FRA"},
            "items": items,
            "payments": [{"id": order_id * 10 + 5, "amount": total, "date": date, "paymentMeans": "Cash" if offline else "Card",
                          "state": "Authorized", "type": "Offline" if offline else "Credit"}],
            "amount": {"total": total, "vat": 0, "discount": 0},
            "meta": {"createdAt": date, "updatedAt": date},
        }

    def _emails(self, chunk_index: int, c: Chunk) -> None:
        """The webhook history of newsletters and dues calls, built column-wise per event kind."""
        rng = self.rng(chunk_index, 5)
        n = c.ids.size
        unsub = {NEWSLETTER_GROUP[0]: np.full(n, TS_NEVER), ASSOCIATION_GROUP[0]: np.full(n, TS_NEVER)}
        spam = np.full(n, TS_NEVER)
        bounced = np.full(n, TS_NEVER)
        has_address = np.array([bool(e) for e in c.email_clean])
        heads = [f'{{"email":"{e}","timestamp":' for e in c.email_clean]
        all_ts: list[np.ndarray] = []
        all_lines: list[str] = []
        for s_index, send in enumerate(self.cat.sends):
            day = send["day"]
            j = self.cycles.index(dt.date.fromordinal(719163 + day).year)
            group_id, group_name = send["group"]
            consent = c.consent_newsletter if send["kind"] == "newsletter" else c.consent_email
            ts0 = int(paris_local_to_unix(np.array([day]), np.array([send["seconds"]]))[0])
            who = np.flatnonzero(consent & has_address & (c.joined_day <= day) & (c.left_day > day)
                                 & (unsub[group_id] > ts0) & (spam > ts0))
            if who.size == 0:
                continue
            a, r = c.attachment[who, j], c.responsiveness[who]
            u = rng.random((who.size, 7))
            t_deliver = ts0 + rng.integers(5, 900, who.size)
            t_open = t_deliver + np.minimum(rng.exponential(8 * 3600, who.size), 10 * 86400).astype(np.int64)
            dropped = bounced[who] < ts0
            invalid = c.email_invalid[who]
            blocked = ~invalid & ~dropped & (u[:, 5] < 0.0004)
            hard_bounce = invalid & ~dropped
            delivered = ~invalid & ~blocked & ~dropped
            machine = delivered & c.machine_opener[who] & (u[:, 0] < 0.92)
            human = delivered & (u[:, 1] < bh.open_probability(r, a))
            click = human & (u[:, 2] < bh.click_probability(r, a))
            unsubscribed = delivered & (u[:, 3] < bh.unsubscribe_probability(a))
            spammed = delivered & ~unsubscribed & (u[:, 4] < 0.0003)
            links = send["topics"]
            if links:
                w = c.prefs[who][:, links]
                cum = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
                link_choice = (u[:, 6][:, None] > cum).sum(axis=1).clip(0, len(links) - 1)
                urls = [f"{SITE}/articles/{tx.TOPICS[t]}/{send['campaign_id']}?utm_campaign={send['campaign_id']}"
                        for t in links]
            else:
                link_choice = np.zeros(who.size, dtype=int)
                urls = [f"{SITE}/adhesion/cotisation-{send['cycle']}?utm_campaign={send['campaign_id']}"]
            args = f'"category":["{send["kind"]}"],"campaign_id":"{send["campaign_id"]}"'
            msgs = [f"{s_index:04x}{int(c.ids[i]):08x}.filter0001.{day}.0" for i in who.tolist()]
            if send["kind"] == "dues_call":
                tails = [f'{args},"member_id":"{int(c.ids[i])}","cycle":"{send["cycle"]}"' for i in who.tolist()]
            else:
                tails = [args] * who.size

            def emit(mask: np.ndarray, ts: np.ndarray, kind: str, code: str, extra: str = "",
                     _who=who, _msgs=msgs, _tails=tails) -> np.ndarray:
                idx = np.flatnonzero(mask & (ts < self.end_ts))
                for k, t in zip(idx.tolist(), ts[idx].tolist(), strict=True):
                    all_lines.append(f'{heads[_who[k]]}{t},"event":"{kind}","sg_event_id":"{_msgs[k]}-{code}",'
                                     f'"sg_message_id":"{_msgs[k]}",{_tails[k]}{extra}}}')
                all_ts.append(ts[idx])
                return idx

            emit(dropped, t_deliver, "dropped", "x", ',"reason":"Bounced Address","status":"5.1.1"')
            bounce_reason = "550 5.1.1 The email account that you tried to reach does not exist"
            for k in emit(hard_bounce, t_deliver, "bounce", "b", f',"type":"bounce","status":"5.1.1","reason":"{bounce_reason}",'
                          '"bounce_classification":"Invalid Address"').tolist():
                i = who[k]
                bounced[i] = min(bounced[i], t_deliver[k])
                self.o.suppressions["bounces"].append({"created": int(t_deliver[k]), "email": c.email_clean[i],
                                                       "reason": bounce_reason, "status": "5.1.1"})
            for k in emit(blocked, t_deliver, "bounce", "b", ',"type":"blocked","status":"5.7.1","reason":"550 5.7.1 Message '
                          'rejected","bounce_classification":"Reputation"').tolist():
                self.o.suppressions["blocks"].append({"created": int(t_deliver[k]), "email": c.email_clean[who[k]],
                                                      "reason": "550 5.7.1 Message rejected", "status": "5.7.1"})
            emit(delivered, t_deliver, "delivered", "d", ',"response":"250 OK"')
            emit(machine, t_deliver + 40 + (who % 600), "open", "m", ',"sg_machine_open":true,"useragent":"Mozilla/5.0","ip":"17.58.0.1"')
            emit(human, t_open, "open", "o", ',"sg_machine_open":false,"useragent":"Mozilla/5.0 (Windows NT 10.0)","ip":"90.12.0.1"')
            t_click = t_open + rng.integers(5, 900, who.size)
            idx = np.flatnonzero(click & (t_click < self.end_ts))
            for k in idx.tolist():
                choice = int(link_choice[k])
                all_lines.append(f'{heads[who[k]]}{int(t_click[k])},"event":"click","sg_event_id":"{msgs[k]}-c",'
                                 f'"sg_message_id":"{msgs[k]}",{tails[k]},"url":"{urls[choice]}",'
                                 f'"url_offset":{{"index":{choice},"type":"html"}},"useragent":"Mozilla/5.0","ip":"90.12.0.1"}}')
            all_ts.append(t_click[idx])
            t_unsub = t_open + 60
            for k in emit(unsubscribed, t_unsub, "group_unsubscribe", "u", f',"asm_group_id":{group_id}').tolist():
                i = who[k]
                unsub[group_id][i] = t_unsub[k]
                self.o.suppressions["asm"].append({"email": c.email_clean[i], "group_id": group_id,
                                                   "group_name": group_name, "created_at": int(t_unsub[k])})
            t_spam = t_open + 120
            for k in emit(spammed, t_spam, "spamreport", "s").tolist():
                i = who[k]
                spam[i] = t_spam[k]
                self.o.suppressions["spam_reports"].append({"created": int(t_spam[k]), "email": c.email_clean[i],
                                                            "ip": "90.12.0.1"})
        self._write_webhook_days(np.concatenate(all_ts) if all_ts else np.zeros(0, dtype=np.int64), all_lines)

    def _write_webhook_days(self, ts: np.ndarray, lines: list[str]) -> None:
        """Append events to their Paris day files, in time order, with the webhook stream's warts."""
        wart = self.config.wart_rate
        order = np.argsort(ts, kind="stable")
        days = paris_day_numbers(ts[order])
        sorted_lines = [lines[k] for k in order.tolist()]
        bounds = np.flatnonzero(np.diff(days)) + 1
        starts = np.concatenate([[0], bounds]).astype(int).tolist()
        ends = np.concatenate([bounds, [len(sorted_lines)]]).astype(int).tolist()
        dup_every = int(1 / (wart / 4)) if wart > 0 else 0
        bad_every = int(1 / (wart / 20)) if wart > 0 else 0
        for s, e in zip(starts, ends, strict=True):
            block = sorted_lines[s:e]
            extra: list[str] = []
            if dup_every:
                extra += block[dup_every - 1::dup_every]  # SendGrid retried a batch: the same events again
                self.o.warts["duplicate_webhook_event"] += len(block[dup_every - 1::dup_every])
            if bad_every:
                for line in block[bad_every // 2::bad_every]:
                    self._bad_counter += 1
                    if self._bad_counter % 2:
                        extra.append(line.replace('"event":"', '"event":"legacy_', 1).replace('","sg_message_id"', '-legacy","sg_message_id"', 1))
                        self.o.warts["unknown_event_type"] += 1
                    else:
                        extra.append(line.replace('"sg_event_id":"', '"sg_event_ref":"', 1))
                        self.o.warts["missing_sg_event_id"] += 1
            self.o.counts["sendgrid_events"] += len(block) + len(extra)
            name = f"{iso_dates(np.array([days[s]]))[0]}.jsonl"
            with open(self.o.providers / "sendgrid/events" / name, "a", encoding="utf-8") as handle:
                handle.write("\n".join(block + extra) + "\n")

    def _events(self, chunk_index: int, c: Chunk) -> None:
        rng = self.rng(chunk_index, 6)
        n = c.ids.size
        attendees, orders, attributions = [], [], []
        for year in range(self.start.year, self.end.year + 2):
            j = self.cycles.index(year)
            opens = day_number(dt.date(year, 1, 1))
            stage = bh.life_stage((opens - c.birth_day) / 365.25, c.grad, year)
            count = rng.poisson(bh.yearly_event_rate(c.attachment[:, j], stage))
            member_idx = np.repeat(np.arange(n), count)
            cum = np.cumsum(c.prefs[member_idx], axis=1)
            topics = (rng.random(member_idx.size)[:, None] > cum).sum(axis=1).clip(0, len(tx.TOPICS) - 1)
            chosen = np.full(member_idx.size, -1)
            for topic in np.unique(topics).tolist():
                pool = self.events_by_topic_year[(topic, year)]
                mask = topics == topic
                if pool.size:
                    chosen[mask] = pool[rng.integers(0, pool.size, mask.sum())]
            keep = chosen >= 0
            pairs = np.unique(np.stack([member_idx[keep], chosen[keep]], axis=1), axis=0)
            for i, e_index in pairs.tolist():
                e = self.cat.events[e_index]
                reg_ts = e["start_ts"] - int(rng.integers(3600, 30 * 86400))
                if not (c.joined_day[i] * 86400 <= reg_ts < c.left_day[i] * 86400) or reg_ts >= self.end_ts:
                    continue
                cancelled = bool(rng.random() < 0.05)
                attended = bool(not cancelled and e["start_ts"] < self.end_ts and rng.random() < bh.attend_probability(c.attachment[i, j]))
                first, last, email = self._identity(c, i, rng.random())
                self._registration(e, reg_ts, cancelled, attended, first, last, email, str(int(c.grad[i])), int(c.ids[i]),
                                   attendees, orders, attributions)
        # Guests who are not members (about one registration in eight).
        guest_count = max(1, len(attendees) + len(orders)) // 8
        events_seen = [e for e in self.cat.events if e["start_ts"] - 86400 < self.end_ts]
        for g in range(guest_count if events_seen else 0):
            e = events_seen[int(rng.integers(0, len(events_seen)))]
            first = tx.FIRST_NAMES_F[int(rng.integers(0, len(tx.FIRST_NAMES_F)))]
            last = tx.LAST_NAMES[int(rng.integers(0, len(tx.LAST_NAMES)))]
            email = f"invite.{chunk_index}.{g}@{tx.PERSONAL_DOMAINS[g % len(tx.PERSONAL_DOMAINS)]}"
            reg_ts = min(e["start_ts"] - int(rng.integers(3600, 20 * 86400)), self.end_ts - 60)
            attended = bool(e["start_ts"] < self.end_ts and rng.random() < 0.7)
            self._registration(e, reg_ts, False, attended, first, last, email, "", 0, attendees, orders, attributions)
        self.o.warts["non_member_registration"] += guest_count if events_seen else 0
        self.o.append_jsonl("providers/eventbrite/attendees.jsonl", attendees)
        self.o.append_jsonl("providers/helloasso/orders.jsonl", orders)
        self.o.append_csv("ground_truth/attributions.csv", attributions)
        self.o.counts["eventbrite_attendees"] += len(attendees)
        self.o.counts["helloasso_orders"] += len(orders)

    def _registration(self, e: dict, reg_ts: int, cancelled: bool, attended: bool, first: str, last: str, email: str,
                      promo: str, member_id: int, attendees: list, orders: list, attributions: list) -> None:
        self.ha_item_id += 1
        key = 900_000_000 + self.ha_item_id
        price_cents = int(e["price_eur"] * 100)
        owner = member_id or ""
        if e["platform"] == "eventbrite":
            changed = reg_ts
            if attended:
                changed = e["start_ts"] + 1800
            elif cancelled:
                changed = reg_ts + 86400
            changed = min(changed, self.end_ts - 1)
            created, changed_iso = iso_utc(np.array([reg_ts, changed]))
            money = {"currency": "EUR", "value": price_cents, "major_value": f"{e['price_eur']:.2f}",
                     "display": f"{e['price_eur']:.2f} €"}
            attendees.append({
                "id": str(key), "event_id": e["id"], "order_id": str(key + 1_000_000_000), "created": created,
                "changed": changed_iso, "ticket_class_name": "Membre" if member_id else "Invité",
                "status": "Not Attending" if cancelled else ("Checked In" if attended else "Attending"),
                "checked_in": attended, "cancelled": cancelled, "refunded": cancelled and price_cents > 0,
                "costs": {"gross": money, "base_price": money},
                "profile": {"first_name": first, "last_name": last, "name": f"{first} {last}", "email": email},
                "answers": [{"question_id": "1001", "question": "Promo (année de sortie)", "type": "text", "answer": promo}],
            })
            attributions.append(("eventbrite_attendee", str(key), owner))
            return
        date = iso_paris(np.array([reg_ts]))[0]
        payer_is_other = member_id and (key % 10 == 0)
        payer = ({"email": f"conjoint.{key}@{tx.PERSONAL_DOMAINS[key % 7]}", "firstName": "Dominique", "lastName": last}
                 if payer_is_other else {"email": email, "firstName": first, "lastName": last})
        payer["country"] = "FRA"
        items = [{"id": key * 10, "amount": price_cents, "type": "Registration",
                  "state": "Canceled" if cancelled else "Processed", "name": "Billet membre" if member_id else "Billet invité",
                  "user": {"firstName": first, "lastName": last},
                  "customFields": [{"name": "Email", "type": "TextInput", "answer": email},
                                   {"name": "Promo", "type": "TextInput", "answer": promo}],
                  "options": _registration_options(key, price_cents)}]
        # The item's amount excludes its options (as HelloAsso documents it); the order's total includes them.
        total = price_cents + sum(option["amount"] for option in items[0]["options"])
        order = {"id": key, "date": date, "formSlug": e["slug"], "formType": "Event", "organizationSlug": ORG_SLUG,
                 "payer": payer, "items": items, "amount": {"total": total, "vat": 0, "discount": 0},
                 "meta": {"createdAt": date, "updatedAt": date}, "payments": []}
        if total:
            order["payments"] = [{"id": key * 10 + 5, "amount": total, "date": date, "paymentMeans": "Card",
                                  "state": "Refunded" if cancelled else "Authorized", "type": "Credit"}]
        orders.append(order)
        attributions.append(("helloasso_payer", str(key), "" if payer_is_other else owner))
        attributions.append(("helloasso_item", str(key * 10), owner))

    def _groups_votes_roles(self, chunk_index: int, c: Chunk, paid: np.ndarray, paid_day: np.ndarray) -> None:
        rng = self.rng(chunk_index, 7)
        n = c.ids.size
        last_j = len(self.cycles) - 2
        a_now = c.attachment[:, last_j]
        memberships, roles, votes = [], [], []
        topic_groups = [g for g in self.cat.groups if g["topic"]]
        region_groups = {g["name"].removeprefix("Groupe régional "): g for g in self.cat.groups if not g["topic"]}
        count = rng.poisson(1.4 * a_now**1.5)
        for i in np.flatnonzero(count).tolist():
            chosen: dict[int, dict] = {}
            if c.region[i] in region_groups and rng.random() < 0.4:
                g = region_groups[c.region[i]]
                chosen[g["group_id"]] = g
            w = np.array([c.prefs[i, tx.TOPICS.index(g["topic"])] for g in topic_groups])
            picks = rng.choice(len(topic_groups), size=min(int(count[i]), len(topic_groups)), replace=False, p=w / w.sum())
            for p in picks.tolist():
                chosen[topic_groups[p]["group_id"]] = topic_groups[p]
            for gid in sorted(chosen):
                joined = max(int(c.joined_day[i]), self.first_day - 1500 + int(rng.integers(0, 1500 + self.last_day - self.first_day)))
                joined = min(joined, self.last_day, int(c.left_day[i]) - 1)
                left = min(int(c.left_day[i]), joined + int(rng.integers(200, 4000))) if rng.random() < 0.25 else int(c.left_day[i])
                leader = a_now[i] > 0.75 and rng.random() < 0.12
                memberships.append((gid, int(c.ids[i]), "leader" if leader else "member", iso_dates(np.array([joined]))[0],
                                    iso_dates(np.array([left]))[0] if left <= self.last_day else None))
                if leader:
                    self.role_id += 1
                    roles.append((self.role_id, int(c.ids[i]), "group_leader", iso_dates(np.array([joined]))[0], None))
        for assembly in self.cat.assemblies:
            year = assembly["held_on"].year
            j = self.cycles.index(year)
            opens, closes = day_number(assembly["voting_opens_on"]), day_number(assembly["held_on"])
            eligible = paid[:, j] & (paid_day[:, j] <= closes) & (c.joined_day <= opens) & (c.left_day > closes)
            voters = np.flatnonzero(eligible & (rng.random(n) < bh.vote_probability(c.attachment[:, j])))
            vote_ts = paris_local_to_unix(opens + rng.integers(0, closes - opens + 1, voters.size),
                                          rng.integers(8 * 3600, 22 * 3600, voters.size))
            channels = rng.choice(["online", "in_person", "proxy"], size=voters.size, p=[0.8, 0.15, 0.05])
            stamps = iso_paris(vote_ts)
            for k, i in enumerate(voters.tolist()):
                self.vote_id += 1
                votes.append((self.vote_id, assembly["assembly_id"], int(c.ids[i]), stamps[k][:19].replace("T", " "), channels[k]))
        volunteers = np.flatnonzero(rng.random(n) < 0.15 * a_now**3)
        role_names = ("mentor", "event_organiser", "board_member", "ambassador")
        for i in volunteers.tolist():
            self.role_id += 1
            started = max(int(c.joined_day[i]), self.first_day - 700 + int(rng.integers(0, 700 + self.last_day - self.first_day)))
            started = min(started, self.last_day)
            ended = started + int(rng.integers(300, 1500)) if rng.random() < 0.3 else NEVER
            ended = min(ended, int(c.left_day[i]))
            roles.append((self.role_id, int(c.ids[i]), role_names[int(rng.integers(0, 4))], iso_dates(np.array([started]))[0],
                          iso_dates(np.array([ended]))[0] if ended <= self.last_day else None))
        self.o.insert("group_memberships", memberships)
        self.o.insert("assembly_votes", votes)
        self.o.insert("volunteer_roles", roles)

    def _truth(self, c: Chunk, paid: np.ndarray, p_pay: np.ndarray, tier: np.ndarray, status: list[str]) -> None:
        cur = len(self.cycles) - 2
        a_now = c.attachment[:, cur]
        r = c.responsiveness
        p_next = p_pay[:, -1]
        left = np.array([s in ("left", "deceased") for s in status])
        engagement = np.where(left, 0.0, bh.true_engagement(a_now, r))
        open_p = bh.open_probability(r, a_now)
        top = np.argsort(-c.prefs, axis=1)[:, :3]
        rows = []
        for i in range(c.ids.size):
            rows.append((
                int(c.ids[i]), c.email_clean[i], tx.LIFE_STAGES[c.stage[i]], f"{a_now[i]:.4f}", f"{r[i]:.4f}",
                f"{c.means[i]:.4f}", int(c.machine_opener[i]), f"{engagement[i]:.2f}", f"{p_pay[i, cur]:.4f}",
                f"{p_next[i]:.4f}", f"{open_p[i]:.4f}", f"{open_p[i] * bh.click_probability(r[i], a_now[i]):.4f}",
                f"{bh.unsubscribe_probability(a_now[i]):.5f}", "1.0" if c.email_invalid[i] else "0.0004",
                f"{bh.reengagement_uplift(r[i], a_now[i]):.4f}", f"{bh.dues_reminder_uplift(r[i], p_pay[i, cur]):.4f}",
                tier[i, cur], f"{tx.DUES_AMOUNTS_EUR[tier[i, cur]]:.2f}", ";".join(tx.TOPICS[t] for t in top[i]), status[i],
            ))
        self.o.append_csv("ground_truth/members.csv", rows)
        self.o.append_csv("ground_truth/dues_probabilities.csv", [
            (int(c.ids[i]), cycle, f"{p_pay[i, j]:.4f}", int(paid[i, j]))
            for i in range(c.ids.size) for j, cycle in enumerate(self.cycles)
            if p_pay[i, j] > 0 and cycle >= self.first_recorded_cycle
        ])

    def finish(self, out: Path) -> dict[str, Any]:
        o = self.o
        for kind in ("bounces", "blocks", "spam_reports", "unsubscribes", "invalid_emails"):
            rows = sorted(o.suppressions.get(kind, []), key=lambda r: (r["created"], r["email"]))
            (o.providers / f"sendgrid/suppressions/{kind}.json").write_text(json.dumps(rows, ensure_ascii=False))
        asm = sorted(o.suppressions.get("asm", []), key=lambda r: (r["created_at"], r["email"]))
        (o.providers / "sendgrid/asm_suppressions.json").write_text(json.dumps(asm, ensure_ascii=False))
        o.close()
        manifest = {
            "generator": "alumni-orchestration synthetic association v1",
            "config": asdict(self.config) | {"end_date": self.end.isoformat()},
            "period": {"start": self.start.isoformat(), "end": self.end.isoformat(),
                       # online dues of the first observed cycle: early renewals start in December
                       "history_start": dt.date(self.start.year - 1, 12, 1).isoformat()},
            "dues_cycles": {"first": self.first_recorded_cycle, "current": self.cycles[-2],
                            "next_hidden": self.cycles[-1]},
            "organization": {"eventbrite_id": EVENTBRITE_ORG_ID, "helloasso_slug": ORG_SLUG},
            "counts": dict(sorted(o.counts.items())),
            "warts": dict(sorted(o.warts.items())),
            "files": {},
        }
        for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"):
            if path.suffix in (".sqlite",):
                continue
            manifest["files"][path.relative_to(out).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        return manifest


MEMBER_TRUTH_COLUMNS = [
    "member_id", "email", "life_stage", "attachment", "responsiveness", "means", "machine_opener", "true_engagement",
    "p_dues_current_cycle", "p_dues_next_cycle", "open_prob", "click_prob", "unsubscribe_prob", "bounce_prob",
    "reengagement_uplift", "dues_reminder_uplift", "dues_tier", "dues_amount_eur", "top_topics", "status",
]


def generate_association(out: Path, config: GeneratorConfig, membership_url: str | None = None) -> dict[str, Any]:
    """Write a whole association to `out` (emptied first) and return its manifest."""
    out = Path(out)
    if out.exists():
        for child in ("providers", "ground_truth", "membership.sqlite", "manifest.json"):
            target = out / child
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    writer = AssociationWriter(out, config, membership_url)
    writer.write_catalogue()
    ids = np.arange(1, config.members + 1, dtype=np.int64)
    for chunk_index, start in enumerate(range(0, config.members, config.chunk_size)):
        writer.write_chunk(chunk_index, ids[start:start + config.chunk_size])
    return writer.finish(out)
