"""A CKAN site's content in memory: packages, organizations, hosted files and accounts."""

from __future__ import annotations

import random
import uuid
from typing import Any

import orjson

from bulkport.testing.ckan.model import package_out
from bulkport.testing.ckan.search import sort_packages
from bulkport.testing.ckan.tokens import Accounts
from bulkport.testing.core.faults import RequestStats
from bulkport.testing.core.files import BlobStore


class CkanStore:
    """A CKAN site's content: packages, organizations and hosted files.

    Attributes tests may inspect: ``packages`` (id → stored dict, deleted ones included),
    ``names`` (name → id), ``organizations`` (id → dict), ``org_names`` (name → id),
    ``members`` (organization id → user name → capacity), ``resources`` (resource id →
    package id), ``blobs`` (hosted files by resource id), ``accounts`` (users and API
    tokens) and ``stats`` (requests by label). Hosted files keep their file name in ``url``
    with ``url_type == "upload"``; the API shows them with their absolute download URL.
    """

    def __init__(self, *, seed: int | None = None) -> None:
        self.packages: dict[str, dict[str, Any]] = {}
        self.names: dict[str, str] = {}
        self.organizations: dict[str, dict[str, Any]] = {}
        self.org_names: dict[str, str] = {}
        self.members: dict[str, dict[str, str]] = {}
        self.resources: dict[str, str] = {}
        self.deleted_resources: dict[str, str] = {}  # id → package id (CKAN's deleted rows)
        self.blobs = BlobStore()
        self.stats = RequestStats()
        self.accounts = Accounts(seed=seed)
        self.version = 0
        self._rng = random.Random(seed)
        self._tag_ids: dict[str, str] = {}
        self._json: dict[str, dict[str, bytes]] = {}
        self._sorted: dict[str, list[dict[str, Any]]] = {}

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def tag_id(self, name: str) -> str:
        if name not in self._tag_ids:
            self._tag_ids[name] = self.new_id()
        return self._tag_ids[name]

    def user_id(self, name: str) -> str:
        """A user's id: the account's, so every action shows one id per user."""
        account = self.accounts.get_user(name)
        return account.id if account else str(uuid.uuid5(uuid.NAMESPACE_URL, f"ckan-user:{name}"))

    def get_package(self, id_or_name: str) -> dict[str, Any] | None:
        pkg = self.packages.get(id_or_name)
        if pkg is None and id_or_name in self.names:
            pkg = self.packages.get(self.names[id_or_name])
        return pkg

    def name_owner(self, name: str) -> str | None:
        """Id of the package (not deleted) that holds ``name``."""
        pkg_id = self.names.get(name)
        if pkg_id is None or self.packages[pkg_id]["state"] == "deleted":
            return None
        return pkg_id

    def get_org(self, id_or_name: str) -> dict[str, Any] | None:
        org = self.organizations.get(id_or_name)
        if org is None and id_or_name in self.org_names:
            org = self.organizations.get(self.org_names[id_or_name])
        return org

    def org_name(self, org_id: str | None) -> str | None:
        org = self.organizations.get(org_id or "")
        return org["name"] if org else None

    def save_package(self, pkg: dict[str, Any]) -> None:
        """Store (or replace) a package and keep the indexes and caches right."""
        old = self.packages.get(pkg["id"])
        if old is not None:
            if old["name"] != pkg["name"] and self.names.get(old["name"]) == pkg["id"]:
                del self.names[old["name"]]
            kept = {res["id"] for res in pkg["resources"]}
            removed = [res["id"] for res in old["resources"] if res["id"] not in kept]
            for res_id in removed:
                self.resources.pop(res_id, None)
                self.blobs.delete(res_id)
            if [r["id"] for r in old["resources"]] != [r["id"] for r in pkg["resources"]]:
                # CKAN keeps the rows it removes, state deleted, and purges them the next
                # time the package's resource list changes.
                self.deleted_resources = {r: p for r, p in self.deleted_resources.items()
                                          if p != pkg["id"] or r in kept}
                self.deleted_resources.update(dict.fromkeys(removed, pkg["id"]))
        # Solr's indexed_ts: set by each write action; a package stored directly (seeded)
        # counts as indexed when it was last modified.
        pkg.setdefault("indexed_ts", pkg.get("metadata_modified"))
        self.packages[pkg["id"]] = pkg
        self.names[pkg["name"]] = pkg["id"]
        for res in pkg["resources"]:
            self.resources[res["id"]] = pkg["id"]
        self._json.pop(pkg["id"], None)
        self._changed()

    def free_name(self, pkg_id: str) -> None:
        """Rename a deleted package to its id: CKAN does so when a new one takes its name."""
        pkg = self.packages[pkg_id]
        if self.names.get(pkg["name"]) == pkg_id:
            del self.names[pkg["name"]]
        self.save_package({**pkg, "name": pkg_id})

    def purge_package(self, pkg_id: str) -> None:
        """Remove a package for good, with its resources and hosted files."""
        pkg = self.packages.pop(pkg_id)
        if self.names.get(pkg["name"]) == pkg_id:
            del self.names[pkg["name"]]
        for res in pkg["resources"]:
            self.resources.pop(res["id"], None)
            self.blobs.delete(res["id"])
        self.deleted_resources = {r: p for r, p in self.deleted_resources.items() if p != pkg_id}
        self._json.pop(pkg_id, None)
        self._changed()

    def save_org(self, org: dict[str, Any]) -> None:
        self.organizations[org["id"]] = org
        self.org_names[org["name"]] = org["id"]
        self._json.clear()  # packages embed their organization
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self._sorted.clear()

    def package_json(self, pkg: dict[str, Any], base: str) -> bytes:
        """The package as ``package_show`` shows it, serialized once per base URL."""
        cached = self._json.setdefault(pkg["id"], {})
        body = cached.get(base)
        if body is None:
            body = cached[base] = orjson.dumps(package_out(pkg, self.organizations, base))
        return body

    def sorted_packages(self, sort: str, keys: list[tuple[str, bool]]) -> list[dict[str, Any]]:
        """Every package in ``sort`` order (cached until the next write)."""
        ordered = self._sorted.get(sort)
        if ordered is None:
            ordered = self._sorted[sort] = sort_packages(self.packages.values(), keys)
        return ordered

    def close(self) -> None:
        """Remove the hosted files from disk."""
        self.blobs.close()
