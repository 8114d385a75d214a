"""The Opendatasoft domain ``bulkport simulate ods`` serves, and its start banner.

:func:`seed_ods` fills a store with a synthetic, deliberately awkward catalog. It is built
from the same generator as the CKAN catalog (:func:`generate_packages`), so titles,
descriptions and keywords carry accents, CJK, emoji and markup. Each dataset gets metadata
in every template (``default``, ``internal``, ``dcat`` and a custom ``city`` template, with
optional fields left out at random), and its files become what Opendatasoft makes of them:
CSV files uploaded resources, PDFs attachments, links remote (HTTP) resources. Some datasets
read their data from an FTP server (no file bodies on the platform: only the explore export
has their records), some carry metadata only.

Besides the synthetic catalog (``--datasets``), the domain holds what the shipped job files
need, so that each runs against it as its header says:

- the custom metadata templates they name (:data:`JOB_TEMPLATES`): ``bulkport``
  (``jobs/demo.toml``'s ``extras_template``), ``ckan`` (the one ``jobs/ckan-to-ods.toml``
  and ``jobs/ods-to-ckan.toml`` suggest) and ``custom`` with ``bulkport_source_id`` (the
  ``mark_field`` of ``jobs/ckan-to-ods.toml`` and ``jobs/nightly-mirror.toml``, which
  ``bulkport verify`` needs), plus any ``--template NAME:FIELD,FIELD`` given;
- the admin's API key as a listed key (``GET /apikeys/`` shows it, labelled
  ``simulator``, as a real domain does), and ``--tokens N`` more over up to 20 users, about
  half labelled ``datapusher``, for ``jobs/revoke-datapusher-tokens.toml``.
"""

from __future__ import annotations

import argparse
import random
import re
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bulkport.testing.core.app import set_items
from bulkport.testing.core.catalog import ORGANIZATIONS, generate_packages
from bulkport.testing.core.faults import Faults
from bulkport.testing.core.files import MIMETYPES, SyntheticFile
from bulkport.testing.ods.apikeys import seed_apikeys
from bulkport.testing.ods.app import create_ods_app
from bulkport.testing.ods.datasets import file_records
from bulkport.testing.ods.explore import RecordSet
from bulkport.testing.ods.files import DATASOURCES, EXTRACTORS
from bulkport.testing.ods.http import ADMIN_USER
from bulkport.testing.ods.metadata import LANGUAGES, check_metadata, dcat_template, default_templates
from bulkport.testing.ods.store import FileRecord, OdsDataset, OdsStore, Publication, default_security, iso

# Licence and theme ids as a domain configures them (opaque), one licence no map knows.
LICENSES = {"cc-by": "38js5ao", "cc-by-sa": "5sfe0h9", "odc-odbl": "odbl01x", "cc-zero": "cc0zz7q"}
UNKNOWN_LICENSE = "x9unk01"
THEMES = ("env01", "trn02", "eco03", "soc04")
CUSTOM_TEMPLATE = "city"
CUSTOM_FIELDS = ("department", "update_notes")
_ODD_NOTES = ("  padded value  ", "ligne 1\nligne 2", "🚧 en travaux", "«guillemets» & <b>html</b>",
              "東京都の注記")
_TIMEZONES = ("Europe/Paris", "Europe/Zurich", "Asia/Tokyo", "America/Sao_Paulo")
_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
# Template → fields the shipped job files name (tests/oracles checks jobs/*.toml against it).
JOB_TEMPLATES: dict[str, list[str]] = {
    "bulkport": ["source_extras"],
    "ckan": ["source_extras"],
    "custom": ["bulkport_source_id"],
}
ADMIN_KEY_LABEL = "simulator"
_NAME = re.compile(r"^[a-z0-9_]+$")


def _when(i: int, days: int = 0) -> str:
    return iso((_EPOCH + timedelta(hours=i, days=days)).timestamp())


def _metadata(pkg: dict[str, Any], rng: random.Random, i: int) -> dict[str, dict[str, Any]]:
    """Every template's values for one dataset; optional fields are left out at random."""
    org = next(o for o in ORGANIZATIONS if o["name"] == pkg["owner_org"])
    default: dict[str, Any] = {"title": pkg["title"], "modified": _when(i, rng.randint(0, 400)),
                               "language": rng.choice(LANGUAGES), "publisher": org["title"]}
    if (pkg.get("notes") or "").strip():
        default["description"] = pkg["notes"]
    if pkg["tags"]:
        default["keyword"] = [t["name"] for t in pkg["tags"]]
    if pkg["url"]:
        default["references"] = pkg["url"]
    if rng.random() < 0.5:
        default["timezone"] = rng.choice(_TIMEZONES)
    if rng.random() < 0.3:
        default["attributions"] = ["OpenStreetMap contributors", f"{org['title']} ©"]
    if rng.random() < 0.3:
        default["modified_updates_on_metadata_change"] = rng.random() < 0.5
    internal: dict[str, Any] = {}
    licence = pkg["license_id"]
    if licence in LICENSES or rng.random() < 0.2:
        internal["license_id"] = LICENSES.get(licence, UNKNOWN_LICENSE)
    themes = rng.sample(THEMES, rng.randint(0, 2))
    if themes:
        internal["theme_id"] = themes
    metadata = {"default": default, **({"internal": internal} if internal else {})}
    if rng.random() < 0.7:
        dcat: dict[str, Any] = {"issued": _when(i), "accrualperiodicity": "monthly"}
        if pkg["author"]:
            dcat["creator"] = pkg["author"]
        if pkg["maintainer"]:
            dcat["contact_name"] = pkg["maintainer"]
        if pkg["maintainer_email"]:
            dcat["contact_email"] = pkg["maintainer_email"]
        if rng.random() < 0.4:
            dcat["conforms_to"] = ["https://www.w3.org/TR/vocab-dcat-2/", "ISO 19115"]
        metadata["dcat"] = dcat
    if rng.random() < 0.5:
        metadata[CUSTOM_TEMPLATE] = {"department": org["title"],
                                     "update_notes": rng.choice(_ODD_NOTES)}
    return {t: {k: {"value": v} for k, v in values.items()} for t, values in metadata.items()}


def _add_file(store: OdsStore, dataset: OdsDataset, filename: str, file: SyntheticFile,
              *, attachment: bool, i: int) -> FileRecord:
    uid = store.new_uid("at_" if attachment else "fi_")
    kind = filename.rsplit(".", 1)[-1].lower()
    record = FileRecord(uid, filename, MIMETYPES.get(kind), _when(i), file.size)
    store.blobs.put_synthetic(uid, file)
    if attachment:
        dataset.add_attachment(record)
    else:
        dataset.files[uid] = record
    return record


def _resource(store: OdsStore, dataset: OdsDataset, title: str, source: dict[str, Any],
              display: str, i: int, kind: str = "csvfile") -> None:
    uid = store.new_uid("re_", dataset.resources)
    origin = source["type"]
    params = {"headers_first_row": True, "separator": ",", "encoding": "utf-8"}
    dataset.resources[uid] = {
        "uid": uid, "type": kind, "title": title, "display_name": display,
        "extraction_infos": {"label": EXTRACTORS[kind], "type": kind},
        "origin": {"label": DATASOURCES[origin], "type": origin}, "params": params,
        "datasource": source, "updated_at": _when(i, 1)}


def _remote(url: str) -> dict[str, Any]:
    """An HTTP datasource for ``url``: the connection holds the server, the rest is relative."""
    parts = urlsplit(url)
    relative = parts.path + (f"?{parts.query}" if parts.query else "")
    return {"type": "http", "connection": {"type": "http", "url": f"{parts.scheme}://{parts.netloc}",
                                           "auth": None},
            "relative_url": relative, "headers": []}


def seed_ods(store: OdsStore, datasets: int = 100, resources: int = 2, file_size: int = 2048,
             seed: int = 0, large_export_rows: int = 12_000) -> list[str]:
    """Fill ``store`` directly (no HTTP) with the generated catalog; return the dataset uids.

    Adds the ``dcat`` and ``city`` templates to the store. Every 7th dataset (from the 4th)
    reads its data from FTP, with records only the explore export serves (the first of them
    ``large_export_rows`` records, more than ``/records`` could ever page through); every
    11th (from the 6th) has metadata only. Datasets with a resource are published, with the
    records of their uploaded CSV files, as a publication reads them. Uids,
    dates and contents are a function of ``seed`` (given a store made with a seed too).
    """
    store.templates.setdefault("dcat", dcat_template())
    store.templates.setdefault(CUSTOM_TEMPLATE,
                               default_templates({CUSTOM_TEMPLATE: list(CUSTOM_FIELDS)})[CUSTOM_TEMPLATE])
    made: list[str] = []
    for i, (pkg, files) in enumerate(generate_packages(datasets, resources, file_size, seed)):
        rng = random.Random(f"bulkport-ods:{seed}:{i}")
        metadata = _metadata(pkg, rng, i)
        errors: dict[str, list[str]] = {}
        check_metadata(store.templates, metadata, "metadata.", errors)
        if errors:
            raise ValueError(f"generated dataset {i} is invalid: {errors}")
        dataset = OdsDataset(uid=store.new_uid("da_"), dataset_id=pkg["name"], created_at=_when(i),
                             updated_at=_when(i, 2), is_restricted=bool(pkg["private"]),
                             metadata=metadata, default_security=default_security())
        if i % 7 == 3:  # data on an FTP server: nothing to download but the export
            _resource(store, dataset, "Données FTP", {"type": "ftp", "connection": {
                "uid": "co_ftp001"}, "relative_url": f"/pub/{pkg['name']}.csv"}, "FTP", i)
            rows = large_export_rows if i == 3 else rng.randint(0, 60)
            store.records[dataset.uid] = RecordSet(rows=rows, seed=seed * 100_003 + i)
        elif i % 11 != 5:
            for res, file in zip(pkg["resources"], files, strict=True):
                if file is None:  # a link: a remote CSV feed on another server
                    url = f"https://data.example.org/exports/{pkg['name']}.csv?lang=fr&v=2"
                    _resource(store, dataset, res["name"], _remote(url), url, i)
                elif file.kind == "pdf":
                    _add_file(store, dataset, res["url"], file, attachment=True, i=i)
                else:
                    record = _add_file(store, dataset, res["url"], file, attachment=False, i=i)
                    _resource(store, dataset, res["name"], {
                        "type": "uploaded_file", "file": {"uid": record.uid}}, record.filename, i)
            if dataset.resources:
                # What publishing extracts from the uploaded CSV files; the rows of remote
                # feeds stand in for a dataset with links only.
                store.records[dataset.uid] = file_records(store, dataset) or RecordSet(
                    rows=rng.randint(1, 40), seed=i)
        if dataset.resources:
            dataset.publication = Publication(is_published=True, status="idle")
            dataset.published_metadata = metadata
        store.add(dataset)
        made.append(dataset.uid)
    return made


def template_option(text: str) -> tuple[str, list[str]]:
    """``--template NAME:FIELD[,FIELD...]`` as (name, fields)."""
    name, _, fields = text.partition(":")
    names = [f.strip() for f in fields.split(",") if f.strip()]
    if not _NAME.match(name) or not names or not all(_NAME.match(f) for f in names):
        raise argparse.ArgumentTypeError(
            f"expected NAME:FIELD[,FIELD...] of lower-case letters, digits and _, got {text!r}")
    return name, names


def simulated_ods(*, datasets: int = 0, resources: int = 2, file_size: int = 2048,
                  seed: int = 0, api_key: str = "simulator-key", tokens: int = 0,
                  templates: list[tuple[str, list[str]]] | None = None,
                  faults: Faults | None = None) -> web.Application:
    """The app of ``bulkport simulate ods``.

    Args:
        datasets, resources, file_size, seed: the synthetic catalog (see
            :func:`seed_ods`); 0 datasets: an empty domain.
        api_key: the domain administrator's key, also listed by ``GET /apikeys/``.
        tokens: API keys to seed besides it, over up to 20 users.
        templates: custom metadata templates to add to :data:`JOB_TEMPLATES` (a name
            given again gets the union of both field lists).
        faults: latency and errors to inject.

    Returns:
        The application; ``app["banner"]`` holds the lines that name its templates and keys.
    """
    custom = {name: list(fields) for name, fields in JOB_TEMPLATES.items()}
    for name, fields in templates or []:
        custom[name] = list(dict.fromkeys([*custom.get(name, []), *fields]))
    store = OdsStore(seed=seed, custom_templates=custom)
    seed_ods(store, datasets=datasets, resources=resources, file_size=file_size, seed=seed)
    # A listed record, not a bare accepted key: revoke-tokens sees it and spares it as its own.
    store.apikeys.create(ADMIN_USER, ADMIN_KEY_LABEL, key=api_key)
    users = max(1, min(20, tokens))
    if tokens > 0:
        seed_apikeys(store.apikeys, users=users, count=tokens, seed=seed)
    app = create_ods_app(store, api_keys=set(), faults=faults)
    set_items(app, banner=banner(store, custom, tokens, users))
    return app


def banner(store: OdsStore, custom: dict[str, list[str]], tokens: int, users: int) -> list[str]:
    """Lines naming the domain's custom templates and seeded keys, for a job file."""
    listed = ", ".join(f"{name} ({', '.join(fields)})" for name, fields in custom.items())
    lines = [f"  custom metadata templates: {listed} — for [target] extras_template and "
             'mark_field (e.g. "custom.bulkport_source_id", which verify needs)',
             f"  {len(store.apikeys.keys)} API keys listed by GET /apikeys/ (the admin's own "
             f"labelled {ADMIN_KEY_LABEL!r})"]
    if tokens > 0:
        lines.append(f"  {tokens} of them seeded over {users} users (user000…), about half "
                     'labelled datapusher: try jobs/revoke-datapusher-tokens.toml with '
                     'type = "ods"')
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``bulkport simulate ods`` besides those every simulator takes."""
    parser.add_argument("--tokens", type=int, default=0,
                        help="API keys to seed over up to 20 users, about half labelled "
                             "datapusher, for revoke-tokens (default %(default)s)")
    parser.add_argument("--template", dest="templates", type=template_option, action="append",
                        metavar="NAME:FIELD[,FIELD...]", default=[],
                        help="a custom metadata template with these fields (repeatable), "
                             "besides those the shipped job files name")


def simulated_site(args: argparse.Namespace, faults: Faults | None) -> web.Application:
    """The app of ``bulkport simulate ods``, from its parsed arguments."""
    return simulated_ods(datasets=args.datasets, resources=args.resources,
                         file_size=args.file_size, seed=args.seed, api_key=args.api_key,
                         tokens=args.tokens, templates=args.templates, faults=faults)
