"""A synthetic open-data catalog: realistic, deterministic and deliberately awkward.

Titles and notes mix accents, CJK and emoji; some notes are empty; tags carry spaces and
accents; licences come from CKAN's default list plus an unknown one; extras have odd keys;
resources are mostly hosted CSV files, sometimes a hosted PDF, sometimes a bare link.
"""

from __future__ import annotations

import html
import random
import re
import unicodedata
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from bulkport.testing.ckan_model import munge_filename
from bulkport.testing.ckan_validate import build_organization, build_package
from bulkport.testing.datapress_schema import EMPTY_QA, build_dataset, file_format
from bulkport.testing.datapress_store import ID_ALPHABET, ITEM_ALPHABET, iso
from bulkport.testing.files import SyntheticFile

if TYPE_CHECKING:
    from bulkport.testing.ckan import CkanStore
    from bulkport.testing.datapress_store import DataPressStore

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
_EPOCH = datetime(2024, 1, 1)
# DataPress licences are {url, title}; "notspecified" has none, the unknown one no URL.
_LICENCES: dict[str, dict[str, Any] | None] = {
    "cc-by": {"url": "https://creativecommons.org/licenses/by/4.0/", "title": "CC BY 4.0"},
    "cc-by-sa": {"url": "https://creativecommons.org/licenses/by-sa/4.0/",
                 "title": "CC BY-SA 4.0"},
    "cc-zero": {"url": "https://creativecommons.org/publicdomain/zero/1.0/",
                "title": "CC0 1.0"},
    "odc-odbl": {"url": "https://opendatacommons.org/licenses/odbl/", "title": "ODC ODbL"},
    "odc-by": {"url": "https://opendatacommons.org/licenses/by/", "title": "ODC-By"},
    "odc-pddl": {"url": "https://opendatacommons.org/licenses/pddl/", "title": "ODC PDDL"},
    "other-open": {"url": None, "title": "Other (Open)"},
    "other-closed": {"url": None, "title": "Other (Not Open)"},
    "notspecified": None,
    "gfdl": {"url": "https://www.gnu.org/licenses/fdl-1.3.html", "title": "GNU FDL"},
    UNKNOWN_LICENSE: {"url": None, "title": "Creative Commons Attribution 4.0"},
}


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
                "url": f"https://example.org/source/{slug}?ref=ckan&lang=fr",
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
        "maintainer_email": rng.choice(("open.data+ckan@example.org", None)),
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


def seed_ckan(store: CkanStore, datasets: int = 100, resources: int = 2,
              file_size: int = 2048, seed: int = 0) -> list[str]:
    """Fill ``store`` directly (no HTTP) with the generated catalog; return the package ids.

    Ids and timestamps are deterministic too: ``metadata_modified`` spreads from 2024 on,
    so ``fq=metadata_modified:[... TO *]`` selects a predictable slice.
    """
    ids = random.Random(f"bulkport-ids:{seed}")

    def new_id() -> str:
        return str(uuid.UUID(int=ids.getrandbits(128), version=4))

    for org in ORGANIZATIONS:
        if org["name"] not in store.org_names:
            made = build_organization(org, name_taken=lambda _: False, new_id=new_id)
            made["created"] = _EPOCH.isoformat(timespec="microseconds")
            store.save_org(made)
    created: list[str] = []
    for i, (pkg, files) in enumerate(generate_packages(datasets, resources, file_size, seed)):
        when = _EPOCH + timedelta(hours=i, microseconds=i)
        modified = when + timedelta(days=ids.randint(0, 400), seconds=ids.randint(0, 86399))
        data = {**pkg, "id": new_id(), "metadata_modified": modified.isoformat()}
        # Stored as CKAN stores an upload: under the munged file name.
        data["resources"] = [{**res, "id": new_id(), "created": when.isoformat(),
                              **({"size": file.size, "url": munge_filename(res["url"])}
                                 if file else {})}
                             for res, file in zip(pkg["resources"], files, strict=True)]
        stored = build_package(data, store, existing=None, sysadmin=True, create_unowned=True,
                               creator_id=store.user_id("admin"))
        stored["metadata_created"] = when.isoformat(timespec="microseconds")
        store.save_package(stored)
        for res, file in zip(stored["resources"], files, strict=True):
            if file is not None:
                store.blobs.put_synthetic(res["id"], file)
        created.append(stored["id"])
    return created


def _html(notes: str | None) -> str:
    """CKAN notes as a DataPress page body: escaped paragraphs (empty stays empty)."""
    if not notes:
        return ""
    paragraphs = (html.escape(part).replace("\n", "<br>") for part in notes.split("\n\n"))
    return "".join(f"<p>{part}</p>" for part in paragraphs)


def _stamp(when: datetime) -> str:
    return iso(when.replace(tzinfo=timezone.utc).timestamp())


def seed_datapress(store: DataPressStore, datasets: int = 100, resources: int = 2,
                   file_size: int = 2048, seed: int = 0) -> list[str]:
    """Fill ``store`` directly (no HTTP) with the generated catalog; return the dataset ids.

    Organizations become teams and mastheads; hosted files become file resources (their
    MD5 ``hash`` computed when first shown), bare links become ``links``; private datasets
    are ``sharing: "private"``; extras go to ``custom``. Ids and timestamps are a function
    of ``seed``: ``updatedAt`` spreads from 2024 on.
    """
    ids = random.Random(f"bulkport-datapress-ids:{seed}")

    def new_id(alphabet: str, length: int, taken: Any) -> str:
        while True:
            made = "".join(ids.choices(alphabet, k=length))
            if made not in taken:
                return made

    team_ids = {team["title"]: team_id for team_id, team in store.teams.items()}
    for org in ORGANIZATIONS:
        store.mastheads.setdefault(org["name"], org["title"])
        if org["title"] not in team_ids:
            team_id = new_id(ID_ALPHABET, 5, {*store.teams, *store.datasets})
            team_ids[org["title"]] = store.add_team(org["title"], team_id)["id"]
    titles = {org["name"]: org["title"] for org in ORGANIZATIONS}
    created: list[str] = []
    for i, (pkg, files) in enumerate(generate_packages(datasets, resources, file_size, seed)):
        dataset_id = new_id(ID_ALPHABET, 5, {*store.teams, *store.datasets})
        when = _EPOCH + timedelta(hours=i, microseconds=i * 1000)
        modified = when + timedelta(days=ids.randint(0, 400), seconds=ids.randint(0, 86399))
        year = 2015 + i % 12
        links: dict[str, Any] = {}
        hosted: list[tuple[dict[str, Any], SyntheticFile]] = []
        for res, file in zip(pkg["resources"], files, strict=True):
            if file is None:
                links[new_id(ITEM_ALPHABET, 3, links)] = {
                    "url": res["url"], "title": res["name"], "order": len(links),
                    "description": res["description"], "qa": dict(EMPTY_QA)}
            else:
                hosted.append(({**res, "order": len(hosted)}, file))
        data = {
            "title": pkg["title"], "description": _html(pkg.get("notes")),
            "masthead": pkg["owner_org"], "team": team_ids[titles[pkg["owner_org"]]],
            "tags": [tag["name"] for tag in pkg["tags"]],
            "topics": ids.sample(sorted(store.topics), min(len(store.topics),
                                                            ids.randint(0, 2))),
            "nextReviewDate": f"{year + 1}-01-15" if ids.random() < 0.5 else None,
            "licence": _LICENCES.get(pkg["license_id"]),
            "contact": {"name": pkg["maintainer"], "email": pkg["maintainer_email"]}
            if pkg["maintainer"] else None,
            "sharing": "private" if pkg["private"] else "public",
            "custom": {extra["key"]: extra["value"] for extra in pkg["extras"]},
            "links": links,
        }
        document, issues = build_dataset(store, data, None, dataset_id=dataset_id,
                                         now=_stamp(when))
        if issues:
            raise ValueError(f"generated dataset {i} is invalid: {issues}")
        document["updatedAt"] = _stamp(modified)
        for res, file in hosted:
            resource_id = new_id(ITEM_ALPHABET, 3, document["resources"])
            origin = f"{store.site}/dataset/{dataset_id}/{resource_id}/{res['url']}"
            store.blobs.put_synthetic(origin, file)
            document["resources"][resource_id] = {
                "title": res["name"], "description": res["description"],
                "timeframe": {"from": f"{year}-01", "to": f"{year}-12"}
                if ids.random() < 0.3 else None,
                "order": res["order"], "origin": origin, "format": file_format(res["url"]),
                "hash": None, "size": file.size}
        store.datasets[dataset_id] = document
        created.append(dataset_id)
    return created
