"""CKAN (and PortalJS Cloud) as a migration target: packages, organizations, resources, files.

A package is found by its deterministic ``name`` and recognised as bulkport's by the
``bulkport_source_id`` extra; a name held by another dataset (one made by hand, or another
source record with the same slug) gets a deterministic variant, and the name chosen is
journaled. Updates go through ``package_patch`` with only the fields that changed, and a
new file through a multipart ``resource_patch``, so what bulkport does not own survives
(``resource_update`` would clear every resource field it is not sent); a file is uploaded
again only when the source says it changed.

Concurrent ``package_create`` calls of one name can all answer 200 with one id on a real
CKAN (each later one overwrites the first), or 500: a create is therefore only trusted once
``package_show`` finds this record's mark on the name, and creates of one name are made one
at a time within a run.
"""

from __future__ import annotations

import mimetypes
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, cast

import anyio

from bulkport.checkpoint import Journal
from bulkport.errors import (
    AuthError,
    BadResponse,
    FilesRefused,
    NotFound,
    PayloadTooLarge,
    TransportError,
    ValidationError,
)
from bulkport.http import HttpClient, Upload
from bulkport.model import Dataset, Resource
from bulkport.portals.base import QUIET, CheckSteps, Written, WrittenFile
from bulkport.portals.ckan.access import check_target_key
from bulkport.portals.ckan.api import CkanApi, parse_error
from bulkport.portals.ckan.locks import KeyedLocks
from bulkport.portals.ckan.mapping import (
    DECLARED_DATES,
    MARK,
    VERSION,
    dataset_to_package,
    resource_to_ckan,
    slug,
    slug_variant,
)
from bulkport.portals.ckan.pages import dataset_page
from bulkport.portals.ckan.settings import CkanSourceSettings, CkanTargetSettings
from bulkport.portals.ckan.source import CkanSource
from bulkport.report import Report
from bulkport.settings import Options
from bulkport.transfer import FileTransfer, with_known_size

NAME_ENTRY = "ckan_name"  # journal: source id → the package name chosen on the target
NEW_ORG = "(organization to be created)"  # a dry run's owner_org for one it would create


class _NameTaken(Exception):
    """Before a retried ``package_create``: another record's dataset holds the name."""


@dataclass
class _Synced:
    """What :meth:`CkanTarget._sync_resources` did: whether it wrote, and the hosted files."""

    wrote: bool
    files: list[WrittenFile]


def _extra(pkg: dict[str, Any], key: str) -> Any:
    return next((e.get("value") for e in pkg.get("extras") or [] if e.get("key") == key), None)


def _blank(value: Any) -> Any:
    return None if value in ("", [], {}) else value


def _package_changes(have: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``want`` that differ on the target; extras merge with the target's."""
    changes = {k: v for k, v in want.items() if k not in ("tags", "extras", "name")
               and _blank(have.get(k)) != _blank(v)}
    if sorted(t["name"] for t in want["tags"]) != sorted(t.get("name") for t in have.get("tags") or []):
        changes["tags"] = want["tags"]
    theirs = {e["key"]: e.get("value") for e in have.get("extras") or []}
    merged = {**theirs, **{e["key"]: e["value"] for e in want["extras"]}}
    # A new source date alone (a file changed, say) is not worth a write of its own: it
    # rides along with the next real change.
    dates = set(DECLARED_DATES.values())
    if changes or {k: v for k, v in merged.items() if k not in dates} != {
            k: v for k, v in theirs.items() if k not in dates}:
        if merged != theirs:
            changes["extras"] = [{"key": k, "value": v} for k, v in sorted(merged.items())]
    return changes


def _new_type(have: dict[str, Any] | None, filename: str) -> dict[str, str]:
    """The ``mimetype`` to send with a file that replaces another of a different type.

    ``resource_patch`` sends the resource's old ``mimetype`` back to CKAN, which then keeps
    it; a new upload would have had the type CKAN guesses from its name.
    """
    if have is None:
        return {}
    new = mimetypes.guess_type(filename)[0]
    old = mimetypes.guess_type(str(have.get("url") or "").rsplit("/", 1)[-1].split("?", 1)[0])[0]
    return {"mimetype": new} if new and new != old else {}


def _resource_same(have: dict[str, Any], want: dict[str, Any]) -> bool:
    for key, value in want.items():
        mine, theirs = _blank(value), _blank(have.get(key))
        if key == "format":
            if mine is None:  # CKAN guessed one from the URL at create: no opinion to push
                continue
            mine, theirs = str(mine).upper(), str(theirs or "").upper()
        if mine != theirs and str(mine) != str(theirs):
            return False
    return True


class CkanTarget:
    """Writes datasets into a CKAN site through the Action API."""

    def __init__(self, settings: CkanTargetSettings, client: HttpClient, options: Options,
                 journal: Journal, report: Report) -> None:
        self.portal = CkanApi(settings, client)
        self.settings = settings
        self.client = client
        self.options = options
        self.journal = journal
        self.report = report
        self.licenses = settings.licenses
        self.organizations = settings.organizations
        self.default_org = settings.organization
        self.create_orgs = settings.create_organizations
        self.max_size = settings.max_resource_size
        self.presigned = settings.presigned_uploads
        # Per organization (few): its id, and one organization_create at a time.
        self._org_ids: dict[str, str | None] = {}
        self._org_locks: defaultdict[str, anyio.Lock] = defaultdict(anyio.Lock)
        self._name_locks = KeyedLocks()  # per name being created: only while in use

    def describe(self) -> str:
        return self.portal.describe()

    async def check(self, steps: CheckSteps = QUIET) -> None:
        """Fail fast, before any write, when the URL is not a CKAN site, the key is unknown
        to it or may not write what the job names, or a named organization is missing
        (:func:`~bulkport.portals.ckan.access.check_target_key`)."""
        await check_target_key(self.portal, self.settings, steps)

    async def _show(self, name: str) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any], await self.portal.call("package_show", {"id": name}))
        except NotFound:
            return None

    def _known_name(self, source_id: str) -> str | None:
        """The name ``source_id`` was written under: journaled by this target, or where a
        mirror holds it."""
        entry = self.journal.get(NAME_ENTRY, source_id)
        return str(entry["name"]) if entry else self.journal.held(source_id)

    def _candidates(self, ds: Dataset) -> list[str]:
        """The names ``ds`` may take, in order: the known one, else its slug and then the
        slug's deterministic variant."""
        known = self._known_name(ds.source_id)
        first = slug(ds.name)
        return [known] if known else [first, slug_variant(first, ds.source_id)]

    def _all_held(self, candidates: list[str]) -> ValidationError:
        return ValidationError(f"names {', '.join(candidates)} are held by other datasets on "
                               f"{self.describe()}")

    async def _resolve(self, ds: Dataset, candidates: list[str] | None = None
                       ) -> tuple[str, dict[str, Any] | None]:
        """The name to write ``ds`` under, and the package already there if it is ours."""
        names = candidates or self._candidates(ds)
        for name in names:
            pkg = await self._show(name)
            if pkg is None or self._ours(pkg, ds) is not None:
                return name, pkg
        raise self._all_held(names)

    def _ours(self, pkg: dict[str, Any] | None, ds: Dataset) -> dict[str, Any] | None:
        return pkg if pkg is not None and _extra(pkg, MARK) == ds.source_id else None

    async def _create(self, ds: Dataset, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create ``body`` for ``ds``; the package when the name is now ``ds``'s, None when
        another dataset holds it (another record's create won a race for the name).

        Whatever the create answered (a 200, a 409, a 500 retried), ``package_show`` decides:
        only a package carrying ``ds``'s mark is taken, never another record's.
        """
        name = body["name"]

        async def lookup() -> dict[str, Any] | None:  # before a retry: only what is ours
            found = await self._show(name)
            if found is not None and self._ours(found, ds) is None:
                raise _NameTaken  # another record's: a retry would only get a 409
            return found  # ours: the lost reply's create went through

        taken: ValidationError | None = None
        async with self._name_locks.hold(name):  # a name's creates never race within a run
            try:
                await self.client.create_once(lambda: self.portal.call(
                    "package_create", body, post=True, retry=False), lookup)
            except _NameTaken:
                pass
            except ValidationError as error:
                if "name" not in error.fields:
                    raise
                taken = error  # "That URL is already in use": whose it is is looked up next
            found = await self._show(name)
        if found is None:
            raise taken or BadResponse(f"{self.describe()}: package_create answered, but "
                                       f"package_show finds no {name!r}")
        return self._ours(found, ds)

    def _org_name(self, ds: Dataset) -> str | None:
        return self.organizations.get(ds.organization or "") or self.default_org or ds.organization

    async def _org_id(self, ds: Dataset, *, create: bool = True) -> str | None:
        """The id of ``ds``'s organization, made when missing (with ``create=False`` a
        missing one that would be made is named ``NEW_ORG``, and nothing is written)."""
        name = self._org_name(ds)
        if not name:
            return None
        async with self._org_locks[name]:  # one organization_create per name, not one per dataset
            if name not in self._org_ids:
                try:
                    org = await self.portal.call("organization_show", {"id": name})
                except NotFound:
                    if not self.create_orgs:
                        raise ValidationError(f"organization {name!r} does not exist on "
                                              f"{self.describe()}") from None
                    if not create:
                        return NEW_ORG
                    org = await self._create_org(slug(name), ds.publisher or name)
                self._org_ids[name] = org["id"]
        return self._org_ids[name]

    async def _create_org(self, name: str, title: str) -> dict[str, Any]:
        async def lookup() -> Any:
            try:
                return await self.portal.call("organization_show", {"id": name})
            except NotFound:
                return None

        try:
            return cast(dict[str, Any], await self.client.create_once(lambda: self.portal.call(
                "organization_create", {"name": name, "title": title}, post=True,
                retry=False), lookup))
        except ValidationError as error:
            # Created meanwhile by another run: an organization is found by name, so it
            # is the one this run would have made.
            if "name" not in error.fields or (org := await lookup()) is None:
                raise
            return cast(dict[str, Any], org)

    async def plan(self, ds: Dataset) -> str:
        """What :meth:`upsert` would do (``"create"``, ``"update"`` or ``"unchanged"``),
        found by the same comparisons, reading only.

        Raises:
            SkippableError: what :meth:`upsert` would fail on before any write (a missing
                organization, names all held, a file over ``max_resource_size``).
        """
        owner_org = await self._org_id(ds, create=False)
        name, pkg = await self._resolve(ds)
        if pkg is None:
            return "create"
        body, _ = dataset_to_package(ds, name=name, owner_org=owner_org, licenses=self.licenses)
        changed = bool(_package_changes(pkg, body)) or pkg.get("state") == "deleted"
        todo, gone = self._resource_work(ds, pkg)
        refused = []
        for res, _want, _have in todo:
            try:
                self._check_size(res)
            except PayloadTooLarge as error:
                refused.append(f"file {res.filename}: {error}")
        FilesRefused.check(refused)
        return "update" if changed or todo or gone else "unchanged"

    async def upsert(self, ds: Dataset, transfer: FileTransfer) -> Written:
        """Create or update ``ds`` with its resources and files.

        Returns:
            The outcome (``"created"``, ``"updated"`` or ``"unchanged"``), the package name,
            its page (:func:`~bulkport.portals.ckan.pages.dataset_page`) and each hosted
            file with the download URL CKAN gives it now.
        """
        owner_org = await self._org_id(ds)
        candidates = self._candidates(ds)
        while True:
            name, pkg = await self._resolve(ds, candidates)
            body, notes = dataset_to_package(ds, name=name, owner_org=owner_org,
                                             licenses=self.licenses)
            created = pkg is None
            if pkg is None:
                pkg = await self._create(ds, {**body, "resources": []})
            if pkg is not None:
                break
            # Another record took the name meanwhile: the next candidate, as a later run would.
            rest = candidates[candidates.index(name) + 1:]
            if not rest:
                raise self._all_held(self._candidates(ds))
            candidates = rest
        for note in notes:
            self.report.note(note)
        outcome = "created"
        if not created:
            changes = _package_changes(pkg, body)
            if pkg.get("state") == "deleted":
                changes["state"] = "active"
            if changes:
                pkg = await self.portal.call("package_patch", {"id": pkg["id"], **changes},
                                             post=True)
            outcome = "updated" if changes else "unchanged"
        if self._known_name(ds.source_id) != name:
            self.journal.record(NAME_ENTRY, ds.source_id, name=name)
        synced = await self._sync_resources(ds, pkg, transfer)
        if synced.wrote and outcome == "unchanged":
            outcome = "updated"
        organization = (pkg.get("organization") or {}).get("name") or self._org_name(ds)
        return Written(outcome, name, dataset_page(self.settings, name, organization),
                       tuple(synced.files))

    # ---- what a mirror needs besides upserts ------------------------------------------

    def key_for(self, ds: Dataset) -> str:
        """The package name ``ds`` was written under (journaled, or held by a mirror)."""
        return self._known_name(ds.source_id) or slug(ds.name)

    async def _owned(self, source_id: str, key: str) -> tuple[str, dict[str, Any] | None]:
        pkg = await self._show(key)
        if pkg is None or pkg.get("state") == "deleted":
            return "absent", None
        if _extra(pkg, MARK) != source_id:  # made by hand, or taken over: never touched
            return "not_owned", None
        return "owned", pkg

    async def delete(self, source_id: str, key: str) -> str:
        """``package_delete`` the copy of ``source_id`` (state deleted: a sysadmin can
        restore it, and a later upsert of the same record does)."""
        status, pkg = await self._owned(source_id, key)
        if pkg is None:
            return status
        await self.portal.call("package_delete", {"id": pkg["id"]}, post=True)
        return "deleted"

    async def hide(self, source_id: str, key: str) -> str:
        """Make the copy of ``source_id`` private (CKAN needs it in an organization)."""
        status, pkg = await self._owned(source_id, key)
        if pkg is None:
            return status
        if not pkg.get("private"):
            await self.portal.call("package_patch", {"id": pkg["id"], "private": True}, post=True)
        return "hidden"

    def is_hidden(self, record: Any) -> bool:
        """Whether a package is private, as :meth:`hide` leaves it."""
        return bool(record.get("private"))

    async def owned_records(self) -> list[tuple[str, Any]]:
        """Every active package carrying the ownership mark, private ones included."""
        settings = self.settings
        reader = CkanSource(CkanSourceSettings(
            type=settings.type, url=settings.url, api_key=settings.api_key,
            auth_header=settings.auth_header, include_private=True), self.client, self.options)
        send, receive = anyio.create_memory_object_stream[Any](reader.rows)
        found: list[tuple[str, Any]] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: reader.produce(send, page_concurrency=2))
            async with receive:
                async for pkg in receive:
                    if isinstance(pkg, dict) and (mark := _extra(pkg, MARK)):
                        found.append((str(mark), pkg))
        return found

    def differences(self, ds: Dataset, record: Any) -> list[str]:
        """The mapped fields, organization, resources and file sizes (and hashes where both
        sides have one) in which ``record`` differs from ``ds``; nothing is read or written."""
        body, _ = dataset_to_package(ds, name=record.get("name") or "", licenses=self.licenses,
                                     owner_org=record.get("owner_org"))
        found = sorted(_package_changes(record, body))
        org, have = self._org_name(ds), record.get("organization") or {}
        if org and not {org, slug(org)} & {have.get("name"), have.get("id")}:
            found.append(f"organization ({have.get('name')!r}, expected {slug(org)!r})")
        current = {r.get(MARK): r for r in record.get("resources") or [] if r.get(MARK)}
        for res in ds.resources:
            copy, label = current.pop(res.source_id, None), f"resource {res.name!r}"
            if copy is None:
                found.append(f"{label} missing")
                continue
            if not _resource_same(copy, resource_to_ckan(res)):
                found.append(f"{label} fields")
            if res.hosted and copy.get("url_type") != "upload":
                found.append(f"{label} file not uploaded")
            elif res.hosted and None not in (res.size, copy.get("size")) and (
                    str(copy["size"]) != str(res.size)):
                found.append(f"{label} size {copy['size']} (source {res.size})")
            elif res.hosted and res.extras.get("hash") and copy.get("hash") and (
                    copy["hash"] != res.extras["hash"]):
                found.append(f"{label} hash differs")
        found.extend(f"resource {r.get('name')!r} on the target only" for r in current.values())
        return found

    @staticmethod
    def _resource_work(ds: Dataset, pkg: dict[str, Any]
                       ) -> tuple[list[tuple[Resource, dict[str, Any], dict[str, Any] | None]],
                                  list[dict[str, Any]]]:
        """What :meth:`_sync_resources` writes into ``pkg``, decided without a request:
        (resource, fields to send, its copy on the target or None) for each resource to
        create or change, and the copies to delete."""
        current = {r.get(MARK): r for r in pkg.get("resources") or [] if r.get(MARK)}
        todo: list[tuple[Resource, dict[str, Any], dict[str, Any] | None]] = []
        for res in ds.resources:
            want = resource_to_ckan(res)
            have = current.get(res.source_id)
            if not res.hosted:
                if have is None or not _resource_same(have, want):
                    todo.append((res, want, have))
                continue
            version = res.content_version
            if (have is not None and have.get("url_type") == "upload" and version is not None
                    and have.get(VERSION) == version and _resource_same(have, want)):
                continue
            if version is not None:
                want[VERSION] = version
            todo.append((res, want, have))
        wanted = {r.source_id for r in ds.resources}
        return todo, [have for mark, have in current.items() if mark not in wanted]

    async def _sync_resources(self, ds: Dataset, pkg: dict[str, Any],
                              transfer: FileTransfer) -> _Synced:
        """Create, update and delete bulkport's resources of ``pkg``."""
        todo, gone = self._resource_work(ds, pkg)
        wrote, refused = False, []
        uploaded: dict[str, WrittenFile] = {}  # source resource id → the file as written
        for res, want, have in todo:
            if not res.hosted:
                if have is None:
                    await self._create_link(pkg["id"], res.source_id, want)
                else:
                    await self.portal.call("resource_patch", {"id": have["id"], **want}, post=True)
                wrote = True
                continue
            try:
                written = await self._upload(pkg["id"], res, want, have, transfer)
                wrote = True
            except PayloadTooLarge as error:
                refused.append(f"file {res.filename}: {error}")
                continue
            uploaded[res.source_id] = WrittenFile(res.source_id, "created" if have is None
                                                  else "updated", self._file_url(written))
        for have in gone:
            await self.portal.call("resource_delete", {"id": have["id"]}, post=True)
            wrote = True
        FilesRefused.check(refused)
        current = {r.get(MARK): r for r in pkg.get("resources") or [] if r.get(MARK)}
        files = [uploaded.get(res.source_id) or WrittenFile(
                     res.source_id, "unchanged", self._file_url(current[res.source_id]))
                 for res in ds.resources if res.hosted]
        return _Synced(wrote, files)

    def _file_url(self, resource: Any) -> str:
        """Where CKAN serves an uploaded resource's bytes: the ``url`` it shows for it
        (``{site}/dataset/{id}/resource/{id}/download/{file name}``)."""
        url = resource.get("url") if isinstance(resource, dict) else None
        if not isinstance(url, str) or not url:
            raise BadResponse(f"{self.describe()}: a written resource came back without "
                              "its url")
        return url

    async def _put_presigned(self, pkg_id: str, target: dict[str, Any] | None,
                             want: dict[str, Any], upload: Upload) -> Any:
        """PortalJS Cloud: the resource, then a presigned PUT of the bytes, then finalize;
        returns the resource as finalized.

        The URL is asked for right before each PUT, so it cannot have expired in a queue; it
        is never logged (messages drop query strings). The source version is written last,
        so an upload that fails half-way is not taken for done by the next run.
        """
        meta = {k: v for k, v in want.items() if k != VERSION}
        if target is None:
            target = await self.portal.call("resource_create", {"package_id": pkg_id, **meta},
                                            post=True, retry=False)
        elif not _resource_same(target, meta):
            await self.portal.call("resource_patch", {"id": target["id"], **meta}, post=True)
        # A stream of unknown length is spooled to disk first (S3 wants a Content-Length),
        # before the URL is asked for, so that spooling cannot eat into its lifetime.
        async with with_known_size(upload) as sized:
            granted = await self.portal.call("resource_upload", {"id": target["id"],
                                                                 "filename": upload.filename},
                                             post=True)
            url = granted.get("presigned_url") if isinstance(granted, dict) else None
            if not url:
                raise BadResponse(f"{self.describe()}: resource_upload gave no presigned_url")
            try:
                await self.client.upload("PUT", url, sized, multipart=False)
            except AuthError as error:
                # The object store's 403 is about the URL (expired, say), not the run's key.
                raise TransportError(f"presigned upload refused ({error.status}); a new URL "
                                     "is asked for on the next attempt") from None
        final = await self.portal.call("resource_upload_finalize", {"id": target["id"]},
                                       post=True)
        if VERSION in want:
            final = await self.portal.call("resource_patch", {"id": target["id"],
                                                              VERSION: want[VERSION]}, post=True)
        return final

    async def _create_link(self, pkg_id: str, mark: str, want: dict[str, Any]) -> None:
        """A link resource, once: a retry first looks for what a lost reply created."""
        async def lookup() -> Any:
            found = await self._show(pkg_id)
            return next((r for r in (found or {}).get("resources") or []
                         if r.get(MARK) == mark), None)

        await self.client.create_once(lambda: self.portal.call(
            "resource_create", {"package_id": pkg_id, **want}, post=True, retry=False), lookup)

    def _check_size(self, res: Resource) -> None:
        """Refuse a file of known size over ``max_resource_size`` before it is sent."""
        if self.max_size is not None and res.size is not None and res.size > self.max_size:
            raise PayloadTooLarge(f"{res.size:,} bytes is over the site's limit of "
                                  f"{self.max_size:,} (max_resource_size)")

    async def _upload(self, pkg_id: str, res: Resource, want: dict[str, Any],
                      have: dict[str, Any] | None, transfer: FileTransfer) -> Any:
        """Stream one hosted file into a resource; the resource as CKAN answered the write.

        Raises:
            PayloadTooLarge: the site refuses the file for its size (checked first against
                ``max_resource_size``, so a known-size file is not sent just to be refused).
        """
        self._check_size(res)
        fields = {k: "" if v is None else str(v) for k, v in want.items()}

        async def put(upload: Upload, attempt: int) -> Any:
            target = have
            if target is None and attempt > 1:  # an earlier attempt may have created it
                found = await self._show(pkg_id)
                target = next((r for r in (found or {}).get("resources") or []
                               if r.get(MARK) == res.source_id), None)
            if self.presigned:
                return await self._put_presigned(pkg_id, target, want, upload)
            # resource_patch, not resource_update: an update replaces the resource whole,
            # clearing every field it is not sent (fields edited on the target included).
            action, ids = (("resource_patch", {"id": target["id"]}) if target is not None
                           else ("resource_create", {"package_id": pkg_id}))
            body = replace(upload, field="upload",
                           fields={**ids, **_new_type(target, upload.filename), **fields})
            reply = await self.client.upload("POST", self.portal.base + action, body,
                                             errors=parse_error)
            result = reply.json()
            return result.get("result") if isinstance(result, dict) else None

        try:
            written, _ = await transfer.send(res, put)
        except (PayloadTooLarge, ValidationError) as error:
            if not isinstance(error, PayloadTooLarge) and "upload" not in error.fields:
                raise
            raise PayloadTooLarge(f"refused as too large ({res.size or '?'} bytes; "
                                  f"ckan.max_resource_size): {error}", error.status) from None
        return written
