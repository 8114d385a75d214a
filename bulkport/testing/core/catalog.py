"""A synthetic open-data catalog: realistic, deterministic and deliberately awkward.

Titles and notes mix accents, CJK and emoji; some notes are empty; tags carry spaces and
accents; licences come from CKAN's default list plus an unknown one; extras have odd keys;
resources are mostly hosted CSV files, sometimes a hosted PDF, sometimes a bare link.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from bulkport.testing.core.files import SyntheticFile

ORGANIZATIONS: list[dict[str, str]] = [
    {"name": "ministere-economie", "title": "Ministère de l'Économie et des Finances",
     "description": "Données budgétaires et fiscales."},
    {"name": "stadt-zuerich", "title": "Stadt Zürich", "description": "Open Government Data"},
    {"name": "tokyo-metropolitan", "title": "東京都", "description": "東京都オープンデータ"},
    {"name": "prefeitura-sao-paulo", "title": "Prefeitura de São Paulo", "description": ""},
    {"name": "open-data-collective", "title": "Open Data Collective 🌍",
     "description": "Volunteers publishing civic data."},
    {"name": "region-skane", "title": "Region Skåne", "description": "Regional statistik"},
]
LICENSE_IDS = ("cc-by", "cc-by-sa", "cc-zero", "odc-odbl", "odc-by", "odc-pddl", "other-open",
               "other-closed", "notspecified", "gfdl")
UNKNOWN_LICENSE = "cc-by-4.0"  # common in the wild, absent from CKAN's default register
_CITIES = ("Paris", "Zürich", "São Paulo", "Kraków", "東京", "Reykjavík", "Montréal", "Málaga",
           "Köln", "Malmö")
_TITLES = (
    "Qualité de l'air – {city} {year}",
    "人口統計 {year}年 ({city})",
    "🚲 Bike counters in {city} ({year})",
    "Straßenbäume {city} {year}",
    "Población por barrio, {city}",
    "Budget {year} : dépenses (€) par commune",
    "Återvinningsstationer {year}",
    "Tráfego rodoviário — {city}",
    "Water quality / Qualité de l'eau {year}",
    '"Quoted" <b>markup</b> & ampersands {year}',
)
_NOTES = (
    "",
    "Données **ouvertes** publiées pour {city}.\n\n- Source : service statistique\n"
    "- Mise à jour : mensuelle 📅",
    "{city}の統計データです。毎月更新されます。",
    "Plain description with a URL: https://example.org/{year}?a=1&b=2 and a tab\there.",
    "Línea 1\nLínea 2 — con «comillas» y ñ.",
)
_TAGS = ("qualité air", "données ouvertes", "transport public", "environnement", "環境",
         "人口", "bike-share", "v1.2", "São Paulo", "Zürich", "open data", "budget_2024",
         "Straßen", "climate", "éducation")
_PEOPLE = ("Zoë Müller", "Łukasz Nowak", "李雷", "Søren Kierkegaard", "José Ñúñez",
           "Chloé O'Brien")
_EXTRAS = (
    ("spatial", '{"type": "Point", "coordinates": [2.3522, 48.8566]}'),
    ("frequency", "monthly"),
    ("dct:temporal", "2020-01-01/2024-12-31"),
    ("Contact Point (é)", "Zoë Müller <zoe@example.org>"),
    ("source_url", "https://example.org/data?id=42&lang=fr"),
    ("empty", ""),
    ("clé_🔑", "valeur ünïcode"),
    ("json_list", '["a", "b"]'),
    ("x-custom.field", "  padded value  "),
)
_LANGUAGES = ("fr", "en", "de", "es", "it", "nl", "ja")
_CSV_NAMES = ("données-{year}.csv", "人口統計.csv", "Straßenbäume {year}.csv",
              "data (final) v2.csv", "export_{n}.csv")
EPOCH = datetime(2024, 1, 1)  # the first dataset's creation; later ones follow hourly

def slugify(text: str) -> str:
    """An ASCII CKAN name part: lowercase letters, digits and dashes."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _file_seed(seed: int, dataset: int, resource: int) -> int:
    return (seed * 1_000_003 + dataset) * 101 + resource


def _resource(rng: random.Random, index: int, year: int, slug: str, *, seed: int,
              dataset: int, file_size: int) -> tuple[dict[str, Any], SyntheticFile | None]:
    draw = rng.random()
    if index > 0 and draw < 0.15:
        file = SyntheticFile(file_size, _file_seed(seed, dataset, index), "pdf")
        return {"name": "Documentation (PDF)", "description": "Méthodologie et définitions.",
                "format": "PDF", "url": f"documentation-{index}.pdf", "url_type": "upload",
                "mimetype": "application/pdf"}, file
    if index > 0 and draw < 0.30:
        return {"name": "Portail source", "description": "", "format": "HTML",
                "url": f"https://example.org/source/{slug}?ref=catalog&lang=fr",
                "url_type": ""}, None
    filename = rng.choice(_CSV_NAMES).format(year=year, n=index)
    file = SyntheticFile(file_size, _file_seed(seed, dataset, index), "csv")
    return {"name": filename.rsplit(".", 1)[0], "description": rng.choice(("", "CSV, UTF-8")),
            "format": "CSV", "url": filename, "url_type": "upload",
            "mimetype": "text/csv"}, file


def _package(i: int, resources: int, file_size: int,
             seed: int) -> tuple[dict[str, Any], list[SyntheticFile | None]]:
    # One generator per dataset: dataset i is the same whatever the catalog size.
    rng = random.Random(f"bulkport-catalog:{seed}:{i}")
    year = rng.randint(2015, 2026)
    city = rng.choice(_CITIES)
    title = rng.choice(_TITLES).format(city=city, year=year)
    slug = (slugify(title)[:80] or "dataset").strip("-") or "dataset"
    name = f"{slug}-{i:05d}"
    pkg: dict[str, Any] = {
        "name": name,
        "title": title,
        "owner_org": rng.choice(ORGANIZATIONS)["name"],
        "license_id": UNKNOWN_LICENSE if rng.random() < 0.05 else rng.choice(LICENSE_IDS),
        "private": rng.random() < 0.08,
        "tags": [{"name": tag} for tag in rng.sample(_TAGS, rng.randint(0, 5))],
        "author": rng.choice((*_PEOPLE, None)),
        "author_email": rng.choice(("data@example.org", "Data.Team@example.org", None)),
        "maintainer": rng.choice((*_PEOPLE, "")),
        "maintainer_email": rng.choice(("open.data+catalog@example.org", None)),
        "version": rng.choice(("1.0", f"{year}.03", "v2", "", None)),
        "url": rng.choice((f"https://example.org/datasets/{name}", "")),
    }
    if rng.random() > 0.1:  # some datasets have no notes at all
        pkg["notes"] = rng.choice(_NOTES).format(city=city, year=year)
    extras = [{"key": k, "value": v} for k, v in rng.sample(_EXTRAS, rng.randint(0, 4))]
    if rng.random() < 0.4:
        extras.append({"key": "language", "value": rng.choice(_LANGUAGES)})
    pkg["extras"] = extras
    res_list, files = [], []
    for index in range(resources):
        res, file = _resource(rng, index, year, name, seed=seed, dataset=i, file_size=file_size)
        res_list.append(res)
        files.append(file)
    pkg["resources"] = res_list
    return pkg, files


def generate_packages(datasets: int, resources: int = 2, file_size: int = 2048,
                      seed: int = 0) -> Iterator[tuple[dict[str, Any], list[SyntheticFile | None]]]:
    """``package_create``-style dicts, each with one file per resource (None for a link).

    Hosted resources carry ``url_type: "upload"`` and their file name in ``url``. Names are
    unique valid CKAN slugs; everything is a function of ``seed``.
    """
    for i in range(datasets):
        yield _package(i, resources, file_size, seed)
