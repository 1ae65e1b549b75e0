"""Word lists for the demo data: regions, names, streets and note templates.

Faker's `sl_SI`/`el_GR`/`pl_PL`/`hr_HR`/`fi_FI` locales (crm-domain.md §7.1) are not a
dependency, so a few hand-picked names per country stand in for them: enough variety for a
demo, and nothing to install.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    country: str
    lat: float
    lon: float
    phone_prefix: str
    #: (city, postal code) pairs around the region centre.
    cities: tuple[tuple[str, str], ...]


REGIONS: tuple[Region, ...] = (
    Region("SI-LJ", "Osrednja Slovenija", "SI", 46.0569, 14.5058, "+386 1",
           (("Ljubljana", "1000"), ("Domžale", "1230"), ("Vrhnika", "1360"),
            ("Grosuplje", "1290"))),
    Region("HR-ZG", "Grad Zagreb", "HR", 45.8150, 15.9819, "+385 1",
           (("Zagreb", "10000"), ("Velika Gorica", "10410"), ("Samobor", "10430"))),
    Region("PL-MA", "Małopolska", "PL", 50.0647, 19.9450, "+48 12",
           (("Kraków", "30-001"), ("Wieliczka", "32-020"), ("Niepołomice", "32-005"))),
    Region("FI-UU", "Uusimaa", "FI", 60.1699, 24.9384, "+358 9",
           (("Helsinki", "00100"), ("Espoo", "02100"), ("Vantaa", "01300"))),
    Region("GR-AT", "Attiki", "GR", 37.9838, 23.7275, "+30 21",
           (("Athina", "105 52"), ("Peiraias", "185 31"), ("Marousi", "151 24"))),
    Region("SI-PO", "Podravje", "SI", 46.5547, 15.6459, "+386 2",
           (("Maribor", "2000"), ("Ptuj", "2250"), ("Slovenska Bistrica", "2310"))),
    Region("HR-ST", "Splitsko-dalmatinska", "HR", 43.5081, 16.4402, "+385 21",
           (("Split", "21000"), ("Kaštela", "21212"), ("Solin", "21210"))),
    Region("PL-MZ", "Mazowsze", "PL", 52.2297, 21.0122, "+48 22",
           (("Warszawa", "00-001"), ("Piaseczno", "05-500"), ("Pruszków", "05-800"))),
    Region("FI-PI", "Pirkanmaa", "FI", 61.4978, 23.7610, "+358 3",
           (("Tampere", "33100"), ("Nokia", "37100"), ("Kangasala", "36200"))),
    Region("GR-KM", "Kentriki Makedonia", "GR", 40.6401, 22.9444, "+30 231",
           (("Thessaloniki", "546 21"), ("Kalamaria", "551 33"), ("Evosmos", "562 24"))),
)

FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "SI": ("Ana", "Maja", "Nina", "Eva", "Petra", "Luka", "Marko", "Jan", "Žiga", "Matej",
           "Tina", "Urška", "Rok", "Tomaž", "Nejc"),
    "HR": ("Ivana", "Marija", "Petra", "Lucija", "Ana", "Ivan", "Josip", "Marko", "Luka",
           "Tomislav", "Ante", "Mia", "Karlo", "Dora", "Filip"),
    "PL": ("Anna", "Katarzyna", "Magdalena", "Agnieszka", "Zofia", "Piotr", "Krzysztof",
           "Tomasz", "Paweł", "Michał", "Jakub", "Ewa", "Marcin", "Joanna", "Adam"),
    "FI": ("Aino", "Emilia", "Helmi", "Sofia", "Laura", "Juhani", "Mikko", "Matti", "Antti",
           "Jari", "Ville", "Eero", "Sanna", "Tuomas", "Kaisa"),
    "GR": ("Maria", "Eleni", "Katerina", "Sofia", "Georgia", "Giorgos", "Dimitris", "Nikos",
           "Kostas", "Giannis", "Christos", "Anna", "Vasilis", "Despina", "Panagiotis"),
}

LAST_NAMES: dict[str, tuple[str, ...]] = {
    "SI": ("Novak", "Horvat", "Krajnc", "Zupančič", "Kovač", "Potočnik", "Mlakar", "Kos",
           "Vidmar", "Golob", "Turk", "Kralj", "Zupan", "Bizjak", "Hribar"),
    "HR": ("Horvat", "Kovačević", "Babić", "Marić", "Jurić", "Novak", "Knežević", "Vuković",
           "Petrović", "Matić", "Tomić", "Pavlović", "Božić", "Blažević", "Grgić"),
    "PL": ("Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski",
           "Zieliński", "Szymański", "Woźniak", "Dąbrowski", "Kozłowski", "Mazur", "Krawczyk",
           "Piotrowski"),
    "FI": ("Korhonen", "Virtanen", "Mäkinen", "Nieminen", "Mäkelä", "Hämäläinen", "Laine",
           "Heikkinen", "Koskinen", "Järvinen", "Lehtonen", "Lehtinen", "Saarinen", "Salminen",
           "Heinonen"),
    "GR": ("Papadopoulos", "Pappas", "Oikonomou", "Georgiou", "Papadakis", "Vlachos",
           "Angelopoulos", "Nikolaidis", "Karagiannis", "Dimitriou", "Konstantinou",
           "Athanasiou", "Ioannou", "Christodoulou", "Makris"),
}

STREETS: dict[str, tuple[str, ...]] = {
    "SI": ("Slovenska cesta", "Celovška cesta", "Dunajska cesta", "Trubarjeva ulica",
           "Partizanska cesta", "Glavni trg"),
    "HR": ("Ilica", "Vukovarska ulica", "Savska cesta", "Ulica kralja Zvonimira",
           "Obala hrvatskog narodnog preporoda", "Trg bana Jelačića"),
    "PL": ("ulica Floriańska", "ulica Długa", "aleja Jana Pawła II", "ulica Marszałkowska",
           "ulica Krakowska", "Rynek Główny"),
    "FI": ("Mannerheimintie", "Hämeenkatu", "Aleksanterinkatu", "Itäinen Pitkäkatu",
           "Satamakatu", "Kauppakatu"),
    "GR": ("Odos Ermou", "Leoforos Syngrou", "Odos Egnatias", "Leoforos Kifisias",
           "Odos Tsimiski", "Odos Athinas"),
}

#: Company-name patterns per channel; `{n}` is a surname, `{c}` the city.
COMPANY_PATTERNS: dict[str, tuple[str, ...]] = {
    "retail": ("Market {n}", "{n} Trgovina", "Mini Market {c}", "{n} & Sons", "Corner Shop {n}"),
    "horeca": ("Bistro {n}", "Café {c}", "Restaurant {n}", "Hotel {c} Centre", "Bar {n}"),
    "wholesale": ("{n} Wholesale", "{c} Cash & Carry", "{n} Distribution"),
    "other": ("{n} Kiosk", "{c} Petrol Station", "{n} Canteen"),
}
CHANNELS: tuple[tuple[str, float], ...] = (
    ("retail", 0.55), ("horeca", 0.25), ("wholesale", 0.10), ("other", 0.10),
)

TITLES = ("Owner", "Store manager", "Purchasing", "Head chef", "Accounts payable",
          "Shift lead", "Category buyer")

NOTE_TEMPLATES: tuple[str, ...] = (
    "Checked the shelf: {p} low on stock, suggested a reorder before the weekend.",
    "Competitor ran a 2-for-1 promotion on {cat}; the buyer asked whether we can match it.",
    "Promotion display for {p} is in place and well stocked. Good compliance.",
    "Owner was busy; left the new {cat} leaflet and will call back next week.",
    "Discussed the delivery window; they prefer mornings before 10:00.",
    "Complaint about a late delivery last week; apologised and noted it for logistics.",
    "New staff member at the counter; introduced our {cat} range.",
    "Planogram reset done for {cat}; removed two slow movers.",
)
WRONG_INVOICE_NOTE = "The buyer says invoice {inv} charges the wrong price for {p}; opened a case."
CASE_SUBJECTS: dict[str, str] = {
    "wrong_invoice": "Invoice amount does not match the agreed price",
    "late_delivery": "Delivery arrived late",
    "damaged_goods": "Goods damaged in transport",
    "missing_items": "Items missing from the delivery",
    "pricing": "Question about the price list",
}
LEAD_DISQUALIFY_REASONS = ("No budget", "Chose a competitor", "Outside our territory",
                           "Business closed", "Not reachable")
