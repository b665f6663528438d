"""`alumni init`: look at a member file or database and propose a mapping, each guess with its evidence.

The proposal is a starting point to review, never trusted as is: a required column without a guess is
flagged in the file (which then does not validate until it is filled in), and so is a label that no
vocabulary knows.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from alumni_orchestration.contracts.membership import CONTRACT_TABLES, DATE, EUROS, FLAG, SMALL_INT, TIMESTAMP

SAMPLE_ROWS = 200
# Column names as French associations and tools write them, normalised (lower case, no accents).
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "members": {
        "member_id": ("member id", "n membre", "numero membre", "numero", "n adherent", "numero d adherent",
                      "numero adherent", "id", "identifiant"),
        "civility": ("civilite", "courtesy", "titre"),
        "first_name": ("prenom", "first name", "prenom adherent"),
        "last_name": ("nom", "last name", "nom adherent", "nom de famille"),
        "email": ("email", "e mail", "courriel", "adresse email", "email payeur", "mail"),
        "secondary_email": ("courriel secondaire", "email secondaire", "email professionnel"),
        "birth_date": ("date de naissance", "date naissance", "naissance", "birthdate", "ne le"),
        "graduation_year": ("promo", "promotion", "annee de promotion", "annee de diplome"),
        "programme": ("formation", "programme", "diplome", "filiere"),
        "city": ("ville", "city", "commune"),
        "region": ("region",),
        "job_function": ("fonction", "metier", "poste"),
        "sector": ("secteur", "secteur d activite"),
        "declared_interests": ("centres d interet", "centres interet", "interets"),
        "consent_email": ("accepte les e mails", "accepte courriels", "accepte les courriels", "consentement email"),
        "consent_newsletter": ("newsletter", "lettre d information", "lettre information"),
        "status": ("statut", "status", "etat", "statut adherent"),
        "joined_on": ("date d adhesion", "date adhesion", "start date", "adhesion", "membre depuis"),
        "left_on": ("date de depart", "date depart", "end date", "date de sortie", "radie le"),
        "updated_at": ("mis a jour le", "date de modification", "derniere modification", "updated at"),
    },
    "dues_payments": {
        "payment_id": ("reference commande", "numero de commande", "payment id", "numero", "id", "reference"),
        "member_id": ("numero d adherent", "n adherent", "adherent", "n membre", "member id", "numero adherent"),
        "dues_year": ("annee", "exercice", "annee de cotisation", "dues year"),
        "tier": ("tarif", "formule", "type de cotisation", "tier"),
        "amount_eur": ("montant", "montant tarif", "montant paye", "amount"),
        "paid_on": ("date de la commande", "date de paiement", "payee le", "date paiement", "paid on", "date"),
        "method": ("moyen de paiement", "moyen", "mode de paiement", "method"),
    },
}
VOCABULARIES = {
    "status": {"actif": "active", "active": "active", "a jour": "active", "a renouveler": "lapsed",
               "en retard": "lapsed", "expire": "lapsed", "radie": "left", "demissionnaire": "left",
               "ancien": "left", "decede": "deceased"},
    "tier": {"annuelle": "annual", "annuel": "annual", "normal": "annual", "reduite": "reduced", "reduit": "reduced",
             "etudiant": "student", "a vie": "lifetime", "bienfaiteur": "annual"},
    "method": {"helloasso": "helloasso", "virement": "transfer", "carte": "card", "cb": "card", "cheque": "cheque",
               "especes": "cash"},
}
DATE_SHAPES = ((r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}", "%d/%m/%Y %H:%M"), (r"\d{2}/\d{2}/\d{4}", "%d/%m/%Y"),
               (r"\d{2}\.\d{2}\.\d{4}", "%d.%m.%Y"), (r"\d{2}-\d{2}-\d{4}", "%d-%m-%Y"))
YES_NO = ({"oui", "yes", "vrai", "x"}, {"non", "no", "faux"})


def normalise(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain).split())


@dataclass
class Guess:
    target: str
    rule: dict[str, object]  # as written in the YAML
    evidence: list[str] = field(default_factory=list)
    score: int = 0
    flags: list[str] = field(default_factory=list)


@dataclass
class TableProposal:
    target: str
    source: dict[str, str]  # as written in the YAML
    guesses: dict[str, Guess]
    missing_required: list[str]


def _values(sample: pd.Series) -> list[str]:
    return [str(v).strip() for v in sample if v is not None and str(v).strip()]


def _name_score(target_table: str, target: str, column: str) -> int:
    name = normalise(column)
    synonyms = SYNONYMS.get(target_table, {}).get(target, ())
    if name == normalise(target) or name in synonyms:
        return 3
    return 1 if any(len(s) > 3 and s in name for s in synonyms) else 0


def _shape(kind: str, values: list[str]) -> tuple[dict[str, object], list[str], int]:
    """What the values say: the rule's transforms, the evidence, and a score (negative: they contradict)."""
    if not values:
        return {}, ["no values in the sample"], 0
    share = lambda pattern: sum(bool(re.fullmatch(pattern, v)) for v in values) / len(values)  # noqa: E731
    if kind in (DATE, TIMESTAMP):
        for pattern, fmt in DATE_SHAPES:
            if share(pattern) > 0.9:
                return {"date": fmt}, [f"{share(pattern):.0%} of the values read as {fmt}"], 2
        if share(r"\d{4}-\d{2}-\d{2}.*") > 0.9:
            return {}, ["ISO dates"], 2
        return {}, ["the values are not dates"], -3
    if kind == FLAG:
        folded = {normalise(v) for v in values}
        if folded <= YES_NO[0] | YES_NO[1]:
            yes = sorted({v for v in values if normalise(v) in YES_NO[0]})
            no = sorted({v for v in values if normalise(v) in YES_NO[1]})
            return {"boolean": {True: yes or ["Oui"], False: no or ["Non"]}}, [f"values {sorted(set(values))[:4]}"], 2
        return ({}, ["0/1 values"], 2) if folded <= {"0", "1", "true", "false"} else ({}, ["not yes/no"], -3)
    if kind == EUROS:
        if share(r"[\d\s\u00a0]+,\d{1,2}( ?€)?") > 0.9:
            return {"decimal": ","}, ["amounts with a decimal comma"], 2
        return ({}, ["amounts"], 1) if share(r"\d+(\.\d+)?") > 0.9 else ({}, ["not amounts"], -3)
    if kind == SMALL_INT:
        if share(r"\d{4}") > 0.9:
            return {}, ["four-digit years"], 2
        if share(r"\D*(\d{4})\D*") > 0.9:
            prefix = re.match(r"(\D*)\d{4}", values[0]).group(1)
            return {"regex": f"{re.escape(prefix)}(\\d{{4}})" if prefix else "(\\d{4})"}, [
                f"a year inside labels such as {values[0]!r}"], 2
        return {}, ["no year"], -3
    return {}, [], 0


def _vocabulary(target: str, values: list[str]) -> tuple[dict[str, object], list[str], list[str]]:
    known = VOCABULARIES[target]
    mapping, unknown = {}, []
    for label in sorted(set(values)):
        folded = normalise(label)
        hit = known.get(folded) or next((v for k, v in known.items() if re.search(rf"\b{k}\b", folded)), None)
        if hit:
            mapping[label] = hit
        else:
            unknown.append(label)
    flags = [f"labels without a contract value: {unknown[:5]}"] if unknown else []
    return ({"values": mapping} if mapping else {}), [f"{len(mapping)} labels recognised"], flags


def guess_column(target_table: str, target: str, column: str, sample: pd.Series) -> Guess | None:
    contract = CONTRACT_TABLES[target_table].column(target)
    name = _name_score(target_table, target, column)
    if name == 0:
        return None
    values = _values(sample)
    transforms, evidence, shape = _shape(contract.kind, values)
    if shape < 0:
        return None
    flags: list[str] = []
    if target in VOCABULARIES and target_table in ("members", "dues_payments") and contract.allowed and values:
        vocabulary, more, flags = _vocabulary(target, values)
        transforms |= vocabulary
        evidence += more
    if target in ("email", "secondary_email") and values:
        share = sum("@" in v for v in values) / len(values)
        if share < 0.5:
            return None
        evidence.append(f"{share:.0%} of the values hold an @")
    rule: dict[str, object] = {"column": column, **transforms}
    return Guess(target, rule, [f"header {column!r}", *evidence], name * 2 + shape, flags)


def propose_table(target_table: str, frame: pd.DataFrame, source: dict[str, str]) -> TableProposal:
    """For each contract column, the source column that fits best (each source column used once)."""
    candidates = []
    for target in (c.name for c in CONTRACT_TABLES[target_table].columns):
        for column in frame.columns:
            guess = guess_column(target_table, target, column, frame[column])
            if guess is not None:
                candidates.append((guess.score, target, column, guess))
    guesses: dict[str, Guess] = {}
    used: set[str] = set()
    for _, target, column, guess in sorted(candidates, key=lambda c: -c[0]):
        if target not in guesses and column not in used:
            guesses[target] = guess
            used.add(column)
    fatal = [c.name for c in CONTRACT_TABLES[target_table].columns if c.key or c.required]
    return TableProposal(target_table, source, guesses, [c for c in fatal if c not in guesses])


def _fits(proposal: TableProposal) -> bool:
    """At least half of the table's key and required columns found."""
    fatal = len(proposal.guesses) - sum(1 for t in proposal.guesses if t not in _fatal(proposal.target))
    return fatal >= len(proposal.missing_required) and fatal > 0


def _fatal(table: str) -> set[str]:
    return {c.name for c in CONTRACT_TABLES[table].columns if c.key or c.required}


def _best_table(frame: pd.DataFrame, source: dict[str, str]) -> TableProposal:
    proposals = [propose_table(t, frame, source) for t in SYNONYMS]
    return max(proposals, key=lambda p: (len(p.guesses) - 3 * len(p.missing_required)))


def sample_file(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    if path.suffix.lower() == ".xlsx":
        return pd.read_excel(path, dtype=str, keep_default_na=False, nrows=SAMPLE_ROWS), {"file": str(path.resolve())}
    raw = path.read_bytes()[:65536]
    try:
        raw.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        encoding = "cp1252"
    first_line = raw.decode(encoding, errors="replace").splitlines()[0] if raw else ""
    separator = ";" if first_line.count(";") > first_line.count(",") else ","
    frame = pd.read_csv(path, sep=separator, encoding="utf-8-sig" if encoding == "utf-8" else encoding, dtype=str,
                        keep_default_na=False, nrows=SAMPLE_ROWS)
    return frame, {"file": str(path.resolve()), "encoding": encoding, "separator": separator}


def sample_database(url: str) -> list[tuple[pd.DataFrame, dict[str, str]]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            return [(pd.read_sql(sa.text(f'select * from "{t}" limit {SAMPLE_ROWS}'), conn).astype(object).map(
                lambda v: None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)), {"table": t})
                for t in tables]
    finally:
        engine.dispose()


def propose(source: str) -> list[TableProposal]:
    """Proposals for a file path or a SQLAlchemy URL: one contract table per file or source table, best first."""
    if "://" in source:
        proposals = [_best_table(frame, where) for frame, where in sample_database(source)]
    else:
        frame, where = sample_file(Path(source))  # an export may hold several tables (members and their dues)
        proposals = [p for p in (propose_table(t, frame, where) for t in SYNONYMS) if _fits(p)] or [
            _best_table(frame, where)]
    best: dict[str, TableProposal] = {}
    for proposal in proposals:  # a contract table takes the source table that covers it best
        kept = best.get(proposal.target)
        if kept is None or len(proposal.guesses) > len(kept.guesses):
            best[proposal.target] = proposal
    return list(best.values())
