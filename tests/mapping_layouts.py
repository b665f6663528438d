"""Test-time writers: a generated association exported in the layouts of the example mappings
(mapping/examples/), so that loading it through a mapping can be compared with the canonical path."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import sqlalchemy as sa

EXAMPLES = Path(__file__).resolve().parents[1] / "alumni_orchestration" / "mapping" / "examples"
STATUS_LABELS = {"active": "Actif", "lapsed": "À renouveler", "left": "Radié", "deceased": "Décédé"}
TIER_LABELS = {"annual": "Annuelle", "reduced": "Réduite", "student": "Étudiant", "lifetime": "À vie"}
METHOD_LABELS = {"helloasso": "HelloAsso", "transfer": "Virement", "card": "Carte", "cheque": "Chèque", "cash": "Espèces"}
YES_NO = {"1": "Oui", "0": "Non"}


def _rows(association: Path, query: str) -> list[dict[str, str | None]]:
    engine = sa.create_engine(f"sqlite:///{association / 'membership.sqlite'}")
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.text(query))
            return [{k: None if v is None else str(v) for k, v in row._mapping.items()} for row in result]
    finally:
        engine.dispose()


def _french_date(iso: str | None, fmt: str) -> str:
    """A canonical date as the layout writes it; text that is not a date is exported as it is."""
    if not iso:
        return ""
    try:
        return dt.date.fromisoformat(iso[:10]).strftime(fmt)
    except ValueError:
        return iso


def _amount(text: str | None) -> str:
    return "" if text is None else f"{float(text):.2f}".replace(".", ",")


def write_helloasso_export(association: Path, folder: Path) -> Path:
    """The association's dues as HelloAsso's membership-form export, next to a copy of the example mapping."""
    payments = _rows(association, "select * from dues_payments order by paid_on desc, payment_id")
    members = {r["member_id"]: r for r in _rows(association, "select * from members")}
    path = folder / "helloasso_adhesions.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(["Référence commande", "Date de la commande", "Statut de la commande", "Nom adhérent",
                         "Prénom adhérent", "Email payeur", "Tarif", "Montant tarif", "Numéro d'adhérent"])
        for p in payments:
            member = members.get(p["member_id"], {})  # an orphan payment stays in the file, as in the source
            writer.writerow([p["payment_id"], _french_date(p["paid_on"], "%d/%m/%Y 10:00"), "Validé",
                             member.get("last_name") or "", member.get("first_name") or "", member.get("email") or "",
                             f"Cotisation {p['dues_year']} – {TIER_LABELS.get(p['tier'] or '', p['tier'] or '')}",
                             _amount(p["amount_eur"]), p["member_id"] or ""])
    shutil.copy(EXAMPLES / "helloasso_adhesions.yaml", folder / "membership_mapping.yaml")
    return folder / "membership_mapping.yaml"


def write_cogito_members(association: Path, folder: Path) -> Path:
    """The association's members in Cogito-Sport's documented columns plus its own, cp1252 with ';'."""
    members = _rows(association, "select * from members order by member_id")
    path = folder / "membres.csv"
    with path.open("w", encoding="cp1252", newline="") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(["N° membre", "COURTESY", "FIRST_NAME", "LAST_NAME", "SEX", "ZIP_CODE", "CITY", "BIRTHDATE",
                         "START_DATE", "END_DATE", "E-mail", "Promo", "Accepte les e-mails", "Newsletter", "Statut"])
        for m in members:
            courtesy = {"M.": "M", "Mme": "MME"}.get(m["civility"] or "", m["civility"] or "")
            writer.writerow([m["member_id"], courtesy, m["first_name"] or "", m["last_name"] or "",
                             {"M": "M", "MME": "F"}.get(courtesy, ""), "", m["city"] or "",
                             _french_date(m["birth_date"], "%d.%m.%Y"), _french_date(m["joined_on"], "%d.%m.%Y"),
                             _french_date(m["left_on"], "%d.%m.%Y"), m["email"] or "",
                             f"Promo {m['graduation_year']}" if m["graduation_year"] else "",
                             YES_NO.get(m["consent_email"] or "", ""), YES_NO.get(m["consent_newsletter"] or "", ""),
                             STATUS_LABELS.get(m["status"] or "", m["status"] or "")])
    shutil.copy(EXAMPLES / "cogito_sport_membres.yaml", folder / "membership_mapping.yaml")
    return folder / "membership_mapping.yaml"


FRENCH_DATABASE_MAPPING = """
tables:
  members:
    source: {table: adherents}
    columns:
      member_id: numero
      civility: civilite
      first_name: prenom
      last_name: nom
      email: courriel
      secondary_email: courriel_secondaire
      birth_date: date_naissance
      graduation_year: {column: promotion, regex: "Promo (\\\\d{4})"}
      programme: formation
      city: ville
      region: region
      job_function: fonction
      sector: secteur
      declared_interests: centres_interet
      consent_email: {column: accepte_courriels, boolean: {true: [Oui], false: [Non]}}
      consent_newsletter: {column: lettre_information, boolean: {true: [Oui], false: [Non]}}
      status: {column: statut, values: {Actif: active, À renouveler: lapsed, Radié: left, Décédé: deceased}}
      joined_on: date_adhesion
      left_on: date_depart
      updated_at: mis_a_jour_le
  dues_payments:
    source: {table: cotisations}
    columns:
      payment_id: numero
      member_id: adherent
      dues_year: annee
      tier: {column: formule, values: {Annuelle: annual, Réduite: reduced, Étudiant: student, À vie: lifetime}}
      amount_eur: montant
      paid_on: {column: payee_le, date: "%d/%m/%Y"}
      method: {column: moyen, values: {HelloAsso: helloasso, Virement: transfer, Carte: card, Chèque: cheque, Espèces: cash}}
"""


CANONICAL_REST = ("groups", "group_memberships", "general_assemblies", "assembly_votes", "volunteer_roles")


def copy_canonical_tables(association: Path, url: str, tables: tuple[str, ...] = CANONICAL_REST) -> str:
    """The other membership tables as they are, beside the French ones; returns their mapping (`columns: same`)."""
    from alumni_orchestration.contracts.membership import metadata

    engine = sa.create_engine(url)
    metadata.create_all(engine, tables=[metadata.tables[t] for t in tables])
    with engine.begin() as conn:
        for table in tables:
            if rows := _rows(association, f'select * from "{table}"'):
                conn.execute(metadata.tables[table].insert(), rows)
    engine.dispose()
    return "".join(f"  {t}:\n    source: {{table: {t}}}\n    columns: same\n" for t in tables)


def write_french_database(association: Path, url: str, folder: Path) -> Path:
    """The association's members and dues in a database whose tables and columns are in French."""
    members = _rows(association, "select * from members order by member_id")
    payments = _rows(association, "select * from dues_payments order by payment_id")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("""create table adherents (numero integer primary key, civilite text, prenom text,
            nom text, courriel text, courriel_secondaire text, date_naissance date, promotion text, formation text,
            ville text, region text, fonction text, secteur text, centres_interet text, accepte_courriels text,
            lettre_information text, statut text, date_adhesion date, date_depart date, mis_a_jour_le timestamp)"""))
        conn.execute(sa.text("""create table cotisations (numero integer primary key, adherent integer, annee integer,
            formule text, montant numeric(8, 2), payee_le text, moyen text)"""))
        conn.execute(sa.text("""insert into adherents values (:member_id, :civility, :first_name, :last_name, :email,
            :secondary_email, :birth_date, :promotion, :programme, :city, :region, :job_function, :sector,
            :declared_interests, :consent_email_fr, :consent_newsletter_fr, :status_fr, :joined_on, :left_on,
            :updated_at)"""), [m | {"promotion": f"Promo {m['graduation_year']}" if m["graduation_year"] else None,
                                   "consent_email_fr": YES_NO.get(m["consent_email"] or ""),
                                   "consent_newsletter_fr": YES_NO.get(m["consent_newsletter"] or ""),
                                   "status_fr": STATUS_LABELS.get(m["status"] or "", m["status"])} for m in members])
        conn.execute(sa.text("""insert into cotisations values (:payment_id, :member_id, :dues_year, :tier_fr,
            :amount_eur, :paid_fr, :method_fr)"""),
                     [p | {"tier_fr": TIER_LABELS.get(p["tier"] or "", p["tier"]),
                           "paid_fr": _french_date(p["paid_on"], "%d/%m/%Y") or None,
                           "method_fr": METHOD_LABELS.get(p["method"] or "", p["method"])} for p in payments])
    engine.dispose()
    path = folder / "membership_mapping.yaml"
    path.write_text(FRENCH_DATABASE_MAPPING, encoding="utf-8")
    return path


def write_cogito_members_xlsx(association: Path, folder: Path) -> Path:
    """The same members as an Excel workbook with typed cells (numbers, real dates), as Excel saves it."""
    import openpyxl

    write_cogito_members(association, folder)
    with (folder / "membres.csv").open(encoding="cp1252", newline="") as source:
        rows = list(csv.reader(source, delimiter=";"))
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(rows[0])
    dates = {rows[0].index(name) for name in ("BIRTHDATE", "START_DATE", "END_DATE")}
    for row in rows[1:]:
        sheet.append([_typed_cell(value, n in dates) for n, value in enumerate(row)])
    workbook.save(folder / "membres.xlsx")
    mapping = folder / "membership_mapping.yaml"
    mapping.write_text(mapping.read_text(encoding="utf-8").replace(
        '{file: membres.csv, encoding: cp1252, separator: ";"}', "{file: membres.xlsx}"), encoding="utf-8")
    return mapping


def _typed_cell(value: str, is_date: bool) -> object:
    if is_date:
        try:
            return dt.datetime.strptime(value, "%d.%m.%Y")
        except ValueError:
            return value or None  # a date that is not one stays text, as a user typed it
    return int(value) if value.isdigit() else (value or None)


ROLE_LABELS = {"member": "Membre", "leader": "Responsable"}
WIDE_GROUPS_MAPPING = """
  groups:
    source: {table: groups}
    columns: same
  group_memberships:
    source: {file: membres.csv, encoding: cp1252, separator: ";"}
    wide:
      key: group_id
      columns: {%s}
    columns:
      member_id: N° membre
      role: {column: _cell, regex: "^(\\\\w+)", values: {Membre: member, Responsable: leader}}
      joined_on: {column: _cell, regex: "depuis le (\\\\S+)", date: "%%d/%%m/%%Y"}
      left_on: {column: _cell, regex: "(?:jusqu'au (\\\\S+))?$", date: "%%d/%%m/%%Y"}
"""


def write_cogito_members_with_groups(association: Path, folder: Path) -> Path:
    """The Cogito layout with one more column per group, as a home-made file keeps them: a cell per
    membership, "Responsable depuis le 29/02/2024 jusqu'au 01/03/2025"; empty when not a member."""
    mapping = write_cogito_members(association, folder)
    groups = _rows(association, "select group_id, name from groups order by group_id")
    memberships = {(m["member_id"], m["group_id"]): m for m in _rows(association, "select * from group_memberships")}
    with (folder / "membres.csv").open(encoding="cp1252", newline="") as source:
        rows = list(csv.reader(source, delimiter=";"))
    with (folder / "membres.csv").open("w", encoding="cp1252", newline="") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(rows[0] + [g["name"] for g in groups])
        for row in rows[1:]:
            cells = []
            for g in groups:
                m = memberships.get((row[0], g["group_id"]))
                cells.append("" if m is None else
                             f"{ROLE_LABELS.get(m['role'] or '', m['role'] or '')} depuis le "
                             f"{_french_date(m['joined_on'], '%d/%m/%Y')}"
                             + (f" jusqu'au {_french_date(m['left_on'], '%d/%m/%Y')}" if m["left_on"] else ""))
            writer.writerow(row + cells)
    listed = ", ".join(f'"{g["name"]}": {g["group_id"]}' for g in groups)
    mapping.write_text(mapping.read_text(encoding="utf-8") + WIDE_GROUPS_MAPPING % listed, encoding="utf-8")
    return mapping
