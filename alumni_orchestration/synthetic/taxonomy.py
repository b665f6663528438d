"""Fixed taxonomies of the association: topics, job functions, sectors, places, names.

They are shared by the generator, the marts (accepted values) and the campaigns (content blocks).
"""

from __future__ import annotations

TOPICS: tuple[str, ...] = (
    "entrepreneuriat",
    "finance",
    "numerique",
    "energie-climat",
    "sante",
    "industrie",
    "conseil",
    "arts-culture",
    "international",
    "recherche",
    "carriere",
    "sport",
)

JOB_FUNCTIONS: tuple[str, ...] = (
    "direction-generale",
    "finance-gestion",
    "ingenierie",
    "informatique-data",
    "conseil",
    "commercial-marketing",
    "ressources-humaines",
    "recherche-developpement",
    "production-logistique",
    "juridique",
    "enseignement",
    "sante",
)

SECTORS: tuple[str, ...] = (
    "banque-assurance",
    "energie",
    "industrie",
    "numerique",
    "conseil",
    "sante-pharma",
    "transport",
    "btp-immobilier",
    "distribution",
    "secteur-public",
    "enseignement-recherche",
    "culture-medias",
    "agroalimentaire",
    "associatif",
)

# Which topics each sector's members tend to care about (drives topic preferences).
SECTOR_TOPICS: dict[str, tuple[str, ...]] = {
    "banque-assurance": ("finance", "carriere"),
    "energie": ("energie-climat", "industrie"),
    "industrie": ("industrie", "energie-climat"),
    "numerique": ("numerique", "entrepreneuriat"),
    "conseil": ("conseil", "finance"),
    "sante-pharma": ("sante", "recherche"),
    "transport": ("industrie", "international"),
    "btp-immobilier": ("industrie", "energie-climat"),
    "distribution": ("entrepreneuriat", "international"),
    "secteur-public": ("international", "carriere"),
    "enseignement-recherche": ("recherche", "arts-culture"),
    "culture-medias": ("arts-culture", "numerique"),
    "agroalimentaire": ("entrepreneuriat", "sante"),
    "associatif": ("arts-culture", "sport"),
}

LIFE_STAGES: tuple[str, ...] = (
    "students",
    "young_alumni",
    "mid_career",
    "late_career",
    "pre_retired",
    "retired",
)

PROGRAMMES: tuple[str, ...] = (
    "Ingénieur généraliste",
    "Ingénieur par apprentissage",
    "Master Grande École",
    "Mastère spécialisé",
    "MBA",
    "Bachelor",
    "Doctorat",
)

# (city, region)
CITIES: tuple[tuple[str, str], ...] = (
    ("Paris", "Île-de-France"),
    ("Boulogne-Billancourt", "Île-de-France"),
    ("Versailles", "Île-de-France"),
    ("Lyon", "Auvergne-Rhône-Alpes"),
    ("Grenoble", "Auvergne-Rhône-Alpes"),
    ("Clermont-Ferrand", "Auvergne-Rhône-Alpes"),
    ("Marseille", "Provence-Alpes-Côte d'Azur"),
    ("Nice", "Provence-Alpes-Côte d'Azur"),
    ("Toulouse", "Occitanie"),
    ("Montpellier", "Occitanie"),
    ("Bordeaux", "Nouvelle-Aquitaine"),
    ("Poitiers", "Nouvelle-Aquitaine"),
    ("Nantes", "Pays de la Loire"),
    ("Angers", "Pays de la Loire"),
    ("Rennes", "Bretagne"),
    ("Brest", "Bretagne"),
    ("Lille", "Hauts-de-France"),
    ("Amiens", "Hauts-de-France"),
    ("Strasbourg", "Grand Est"),
    ("Nancy", "Grand Est"),
    ("Reims", "Grand Est"),
    ("Rouen", "Normandie"),
    ("Caen", "Normandie"),
    ("Dijon", "Bourgogne-Franche-Comté"),
    ("Besançon", "Bourgogne-Franche-Comté"),
    ("Orléans", "Centre-Val de Loire"),
    ("Tours", "Centre-Val de Loire"),
    ("Ajaccio", "Corse"),
    ("Genève", "International"),
    ("Londres", "International"),
    ("Bruxelles", "International"),
    ("Montréal", "International"),
)
# Population weights: Île-de-France dominates, as in most French alumni networks.
CITY_WEIGHTS: tuple[float, ...] = (
    18, 4, 3, 7, 3, 1.5, 4, 2, 4, 3, 4, 1, 3, 1.5, 3, 1, 3, 1, 2, 1.5, 1, 1.5, 1, 1, 1, 1, 1, 0.5,
    1.5, 1.5, 1, 1,
)

FIRST_NAMES_F: tuple[str, ...] = (
    "Camille", "Léa", "Manon", "Chloé", "Emma", "Inès", "Sarah", "Julie", "Hélène", "Élise",
    "Anaïs", "Zoé", "Clémence", "Margaux", "Océane", "Mathilde", "Pauline", "Céline", "Nathalie",
    "Isabelle", "Sophie", "Valérie", "Françoise", "Monique", "Sylvie", "Agnès", "Bérénice",
    "Gaëlle", "Noémie", "Maëlle", "Aurélie", "Estelle", "Lucie", "Jeanne", "Louise", "Amélie",
)
FIRST_NAMES_M: tuple[str, ...] = (
    "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Jules", "Théo", "Raphaël", "Nicolas", "Thomas",
    "Julien", "Antoine", "Maxime", "Alexandre", "Clément", "Benoît", "Jérôme", "Stéphane", "François",
    "Frédéric", "Philippe", "Michel", "Jean-Pierre", "Bernard", "Olivier", "Éric", "Cédric",
    "Sébastien", "Grégoire", "Timothée", "Loïc", "Gaël", "Noël", "Hervé", "Benoît", "Rémi",
)
LAST_NAMES: tuple[str, ...] = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
    "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier",
    "Morel", "Girard", "André", "Lefebvre", "Mercier", "Dupont", "Lambert", "Bonnet", "François",
    "Martinez", "Legrand", "Garnier", "Faure", "Rousseau", "Blanc", "Guérin", "Muller", "Henry",
    "Roussel", "Nicolas", "Perrin", "Morin", "Mathieu", "Clément", "Gauthier", "Dumont", "Lopez",
    "Fontaine", "Chevalier", "Robin", "Masson", "Sanchez", "Gérard", "Nguyen", "Boyer", "Denis",
    "Lemaire", "Duval", "Joly", "Gautier", "Roger", "Roche", "Roy", "Noël", "Meyer", "Lucas", "Meunier",
    "Jean", "Pérez", "Marchand", "Dufour", "Blanchard", "Barbier", "Brun", "Dumas", "Brunet", "Schmitt",
    "Leroux", "Colin", "Fernandez", "Pierre", "Renard", "Arnaud", "Rolland", "Caron", "Aubert",
    "Giraud", "Leclerc", "Vidal", "Bourgeois", "Renaud", "Lemoine", "Picard", "Gaillard", "Philippe",
    "Leclercq", "Lacroix", "Fabre", "Dupuis", "Olivier", "Rodriguez", "Da Silva", "Hubert", "Louis",
    "Charles", "Guillot", "Rivière", "Le Gall", "Guillaume", "Adam", "Rey", "Moulin", "Gonzalez",
    "Berger", "Lecomte", "Ménard", "Fleury", "Deschamps", "Carpentier", "Julien", "Benoît", "Paris",
    "Maillard", "Marchal", "Aubry", "Vasseur", "Le Roux", "Renault", "Jacquet", "Collet", "Prévost",
    "Poirier", "Charpentier", "Royer", "Huet", "Baron", "Dupuy", "Pons", "Paul", "Laine", "Carré",
    "Breton", "Rémy", "Schneider", "Perrot", "Guyot", "Barre", "Marty", "Cousin", "Bénard", "Hélie",
)

PERSONAL_DOMAINS: tuple[str, ...] = ("gmail.com", "orange.fr", "free.fr", "outlook.fr", "yahoo.fr",
                                     "laposte.net", "icloud.com", "hotmail.fr", "sfr.fr", "proton.me")
WORK_DOMAINS: tuple[str, ...] = ("bnpparibas.com", "engie.com", "airbus.com", "capgemini.com",
                                 "sanofi.com", "sncf.fr", "vinci.com", "carrefour.com", "edf.fr",
                                 "orange.com", "thalesgroup.com", "loreal.com", "cnrs.fr", "ratp.fr")

DUES_TIERS: tuple[str, ...] = ("annual", "reduced", "student", "lifetime")
DUES_AMOUNTS_EUR: dict[str, float] = {"annual": 90.0, "reduced": 45.0, "student": 15.0, "lifetime": 900.0}
