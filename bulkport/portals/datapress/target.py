"""DataPress as a migration target: find-or-create, minimal JSON Patches, chunked files.

DataPress assigns dataset ids, so the id made for a source record is journaled, and the
dataset carries the source id in ``custom.bulkport_source_id``: with a fresh state
directory one pass over ``export.json`` finds bulkport's datasets again (their ids kept in
the state store, not in memory). Each upsert says where the dataset is now (its page,
``{site}/dataset/{id}``) and where each file is served (the resource's ``url``). Updates are RFC
6902 patches computed with ``jsonpatch`` between the current document and the fields
bulkport owns, so what people edit on the site (other custom fields, their own links and
files) survives and a re-run sends no PATCH at all. Files go through the chunked upload,
replaced in place when the source says they changed, skipped when size, version or MD5
say they did not.

As a mirror target it hides what the source dropped (``sharing: "private"``) but cannot
delete it: the DataPress API documents no way to delete a dataset.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import anyio

from bulkport.checkpoint import Journal
from bulkport.errors import (
    AuthError,
    BadResponse,
    ConfigError,
    FilesRefused,
    NotFound,
    PayloadTooLarge,
    SkippableError,
    ValidationError,
)
from bulkport.http import HttpClient, Upload
from bulkport.model import Dataset, Resource
from bulkport.portals.base import QUIET, CheckSteps, Written, WrittenFile
from bulkport.portals.datapress.access import check_target_key
from bulkport.portals.datapress.api import dataset_page, parse_error
from bulkport.portals.datapress.mapping import MARK, RESOURCES, link_id, md5_of
from bulkport.portals.datapress.mapping_write import (
    DataPressMapOptions,
    as_document,
    dataset_to_datapress,
    minimal_patch,
    patch_label,
    upload_fields,
    upload_name,
)
from bulkport.portals.datapress.settings import NO_DELETE, DataPressTargetSettings
from bulkport.portals.datapress.source import iter_export
from bulkport.portals.datapress.upload import ChunkedUploader, Uploaded, UploadState
from bulkport.report import Report
from bulkport.settings import Options
from bulkport.store import transaction
from bulkport.transfer import FileTransfer

ID_ENTRY = "datapress_id"  # journal: source id → the DataPress dataset id (ref: that id)
FILE_ENTRY = "datapress_file"  # journal: "<source id>/<resource id>" → file resource, version
# journal: source id → dataset id of the marked datasets of the site's export, as this
# run's one pass over it found them (scratch, remade by the next run that needs it)
SITE_ENTRY = "datapress_site"
SCAN_BATCH = 500  # marked datasets written to the state store per transaction
Operations = list[dict[str, Any]]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DataPressTarget:
    """Writes datasets into a DataPress site."""

    def __init__(self, settings: DataPressTargetSettings, client: HttpClient, options: Options,
                 journal: Journal, report: Report) -> None:
        self.client = client
        self.settings = settings
        self.journal = journal
        self.report = report
        self.api = settings.api
        self.create_url = f"{settings.url}/api/dataset"  # documented there for every generation
        self.options = DataPressMapOptions(
            team=settings.team, masthead=settings.masthead, teams=settings.teams,
            mastheads=settings.mastheads, licences=settings.licenses,
            # An empty [target.topics] table is no map: topics set by hand stay.
            topics=settings.topics or None, fields=settings.fields)
        self.max_size = settings.max_file_size
        self.touch = settings.touch_updated_at
        self.uploader = ChunkedUploader(client, self.api, settings.part_size)
        self._scanned = False  # the export was read into SITE_ENTRY during this run
        self._scan_lock = anyio.Lock()
        client.bind(settings.url, {settings.auth_header: settings.api_key})

    def describe(self) -> str:
        return f"DataPress {self.settings.url}"

    async def _call(self, method: str, url: str, *, retry: bool = True, **kwargs: Any) -> Any:
        """One API call. A 403 here is about one dataset (the key itself was checked)."""
        try:
            response = await self.client.request(method, url, errors=parse_error, retry=retry,
                                                 **kwargs)
        except AuthError as error:
            raise SkippableError(f"no permission: {error}", error.status) from None
        return response.json()

    async def check(self, steps: CheckSteps = QUIET) -> None:
        """Fail fast, before any write: a wrong key, a key that may not write into the
        teams named, or a team, masthead or topic the site does not have
        (:func:`~bulkport.portals.datapress.access.check_target_key`)."""
        await check_target_key(self.client, self.settings, steps)

    async def _get(self, dataset_id: str) -> dict[str, Any]:
        found = await self._call("GET", f"{self.api}/dataset/{dataset_id}")
        if not isinstance(found, dict) or "id" not in found:
            raise BadResponse(f"{self.api}/dataset/{dataset_id}: unexpected reply")
        return found

    async def _marked(self) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """(source id, record) of every dataset of the export that carries the mark; the
        export shows private datasets to their editors, so hidden copies are included."""
        records = iter_export(self.client, f"{self.api}/datasets/export.json")
        async with aclosing(records):
            async for record in records:
                custom = record.get("custom") if isinstance(record, dict) else None
                mark = custom.get(MARK) if isinstance(custom, dict) else None
                if isinstance(mark, str) and isinstance(record.get("id"), str):
                    yield mark, record

    async def _find_marked(self, source_id: str) -> str | None:
        """The id of the first dataset of the export marked with ``source_id``, reading
        the export only as far as that dataset."""
        marked = self._marked()
        async with aclosing(marked):
            async for mark, record in marked:
                if mark == source_id:
                    return str(record["id"])
        return None

    async def _scan(self) -> None:
        """Index bulkport's datasets of the export (source id → dataset id, the first of
        each mark) in the state store, a batch per transaction: ids only, never records,
        and nothing in memory but the batch."""
        store = self.journal.store
        self.journal.clear(SITE_ENTRY)
        batch: list[tuple[str, str]] = []

        def flush() -> None:
            # No await inside: other workers' journal writes cannot land in this transaction.
            with transaction(store.db):
                for mark, dataset_id in batch:
                    if self.journal.get(SITE_ENTRY, mark) is None:
                        self.journal.record(SITE_ENTRY, mark, ref=dataset_id, id=dataset_id)
            batch.clear()

        marked = self._marked()
        async with aclosing(marked):
            async for mark, record in marked:
                batch.append((mark, record["id"]))
                if len(batch) >= SCAN_BATCH:
                    flush()
        flush()

    async def _indexed(self, source_id: str) -> str | None:
        async with self._scan_lock:  # one export read, however many workers ask at once
            if not self._scanned:
                await self._scan()
                self._scanned = True
        found = self.journal.get(SITE_ENTRY, source_id)
        return str(found["id"]) if found else None

    async def _resolve(self, ds: Dataset) -> dict[str, Any] | None:
        """The dataset written for ``ds`` before, as the site shows it now, or None."""
        dataset_id = self._known_id(ds.source_id) or await self._indexed(ds.source_id)
        if dataset_id is None:
            return None
        try:
            current = await self._get(dataset_id)
        except NotFound:  # deleted on the site since: made again
            return None
        if _mark(current) != ds.source_id:
            raise ValidationError(f"dataset {dataset_id} on {self.describe()} no longer carries "
                                  f"custom.{MARK} = {ds.source_id!r}; restore it or remove the "
                                  "state directory entry")
        return current

    def _known_id(self, source_id: str) -> str | None:
        """The dataset id journaled (made or found by a run since the mirror's last
        commit), else the one a mirror holds ``source_id`` under."""
        known = self.journal.get(ID_ENTRY, source_id)
        return str(known["id"]) if known else self.journal.held(source_id)

    def _learn(self, source_id: str, dataset_id: str) -> None:
        """Journal where ``source_id`` is, unless that is known already."""
        if self._known_id(source_id) != dataset_id:
            self.journal.record(ID_ENTRY, source_id, ref=dataset_id, id=dataset_id)

    async def _create(self, ds: Dataset, wanted: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in wanted.items() if k != "resources"}  # files come by upload

        async def create() -> dict[str, Any]:
            reply = await self._call("POST", self.create_url, json=body, retry=False)
            made = reply.get("dataset") if isinstance(reply, dict) else None
            if not isinstance(made, dict) or "id" not in made:
                raise BadResponse(f"{self.create_url}: the reply has no dataset")
            return made

        async def lookup() -> dict[str, Any] | None:
            found = await self._find_marked(ds.source_id)
            return await self._get(found) if found else None

        made = await self.client.create_once(create, lookup)
        self.journal.record(ID_ENTRY, ds.source_id, ref=made["id"], id=made["id"])
        return made

    async def plan(self, ds: Dataset) -> str:
        """What :meth:`upsert` would do (``"create"``, ``"update"`` or ``"unchanged"``),
        found by the same comparisons, reading only.

        Raises:
            SkippableError: what :meth:`upsert` would fail on (a copy that lost its mark, a
                file over ``max_file_size``).
        """
        current = await self._resolve(ds)
        if current is None:
            return "create"
        files = self._known_files(ds, current)
        referenced = {entry["id"] for entry in files.values()}
        held = current.get("resources") or {}
        uploads, refused = False, []
        for res in (res for res in ds.resources if res.hosted):
            send, _ = self._file_step(res, held, files, referenced)
            if not send:
                continue
            try:
                self._check_size(res)
                uploads = True
            except PayloadTooLarge as error:
                refused.append(f"file {upload_name(res)}: {error}")
        FilesRefused.check(refused)
        wanted, _ = dataset_to_datapress(ds, self.options, files=files)
        return "update" if uploads or minimal_patch(current, wanted) else "unchanged"

    async def upsert(self, ds: Dataset, transfer: FileTransfer) -> Written:
        """Create or update ``ds`` with its files and links.

        Returns:
            The outcome (``"created"``, ``"updated"`` or ``"unchanged"``), the dataset id,
            its public page, and each hosted file with what was done to it and the URL the
            site serves it at (the resource's ``url``, what the official client downloads).

        Raises:
            ValidationError: the site refused a field (``fields`` maps each path to why).
            SkippableError: this dataset failed; the run goes on.
        """
        wanted, notes = dataset_to_datapress(ds, self.options)
        for note in notes:
            self.report.note(note)
        current = await self._resolve(ds)
        created = current is None
        if current is None:
            current = await self._create(ds, wanted)
        else:
            self._learn(ds.source_id, current["id"])  # found by the export: key_for knows it
        files = self._known_files(ds, current)
        current, actions, refused = await self._sync_files(ds, current, files, transfer)
        wanted, _ = dataset_to_datapress(ds, self.options, files=files)
        patched, current = await self._patch(current, lambda doc: minimal_patch(doc, wanted))
        FilesRefused.check(refused)  # after the patch: the rest of the dataset is written
        if created:
            outcome = "created"
        else:
            outcome = "updated" if patched or any(
                action != "unchanged" for action in actions.values()) else "unchanged"
        return Written(outcome, current["id"], dataset_page(self.settings.url, current["id"]),
                       self._written_files(ds, current, files, actions))

    def _written_files(self, ds: Dataset, current: Mapping[str, Any],
                       files: Mapping[str, Mapping[str, Any]],
                       actions: Mapping[str, str]) -> tuple[WrittenFile, ...]:
        """Each hosted file of ``ds`` as the site now holds it, with its download URL.

        Raises:
            BadResponse: the site shows a file without its ``url``.
        """
        held = current.get("resources") or {}
        written = []
        for res in (res for res in ds.resources if res.hosted and res.source_id in files):
            resource_id = files[res.source_id]["id"]
            url = (held.get(resource_id) or {}).get("url")
            if not isinstance(url, str) or not url:
                raise BadResponse(f"dataset {current['id']} on {self.describe()}: file "
                                  f"{resource_id} has no url")
            written.append(WrittenFile(res.source_id, actions.get(res.source_id, "unchanged"),
                                       url))
        return tuple(written)

    async def _patch(self, current: dict[str, Any],
                     diff: Callable[[dict[str, Any]], Operations]) -> tuple[bool, dict[str, Any]]:
        """PATCH the operations ``diff`` finds for the dataset (recomputed from the site
        before a retry). Returns whether a PATCH was sent, and the dataset as the site
        shows it after."""
        dataset_id = current["id"]
        first, sent = True, False

        async def attempt() -> None:
            nonlocal first, current, sent
            if not first:  # a lost reply may have applied it: diff again from the site
                current = await self._get(dataset_id)
            first = False
            operations = diff(current)
            if not operations:
                return
            if self.touch:  # DataPress does not bump updatedAt for you
                operations.append({"op": "replace", "path": "/updatedAt", "value": _now()})
            sent = True
            reply = await self._call("PATCH", f"{self.api}/dataset/{dataset_id}",
                                     json=operations, retry=False)
            patched = reply.get("dataset") if isinstance(reply, dict) else None
            if isinstance(patched, dict) and patched.get("id") == dataset_id:
                current = patched

        await self.client.with_retries(attempt)
        return sent, current

    # ---- what a mirror needs besides upserts ------------------------------------------

    def key_for(self, ds: Dataset) -> str:
        """The 5-character id of the dataset ``ds`` was written as (known once upserted).

        Raises:
            KeyError: ``ds`` was neither upserted in this run nor is held by the mirror.
        """
        dataset_id = self._known_id(ds.source_id)
        if dataset_id is None:
            raise KeyError(f"no DataPress dataset known for source record {ds.source_id}")
        return dataset_id

    async def delete(self, source_id: str, key: str) -> str:
        """Refused: DataPress cannot delete a dataset (a mirror checks this before it runs).

        Raises:
            ConfigError: always.
        """
        raise ConfigError(f"{self.describe()}: {NO_DELETE}")

    async def hide(self, source_id: str, key: str) -> str:
        """Make the copy of ``source_id`` (dataset ``key``) private, if it still carries the
        mark; an upsert of the same record makes it public again.

        Returns:
            ``"hidden"``, ``"absent"`` (no such dataset) or ``"not_owned"`` (left alone).
        """
        try:
            current = await self._get(key)
        except NotFound:
            return "absent"
        if _mark(current) != source_id:
            return "not_owned"
        await self._patch(current, _hide_operations)
        return "hidden"

    def is_hidden(self, record: Any) -> bool:
        """Whether a dataset is private, as :meth:`hide` leaves it."""
        return isinstance(record, Mapping) and record.get("sharing") == "private"

    async def owned_records(self) -> list[tuple[str, Any]]:
        """Every dataset of the export carrying the mark, private ones included (the key
        edits the target's teams, and the export shows private datasets to their editors)."""
        found: list[tuple[str, Any]] = []
        marked = self._marked()
        async with aclosing(marked):
            async for mark, record in marked:
                found.append((mark, record))
        return found

    def differences(self, ds: Dataset, record: Any) -> list[str]:
        """What differs between ``ds`` and its copy ``record`` (from the export or a GET):
        the fields bulkport writes, its links and files (found by the resource map in
        ``custom``), and the files' sizes and MD5 where both sides state one."""
        doc = as_document(record)
        files = self._known_files(ds, doc)
        wanted, _ = dataset_to_datapress(ds, self.options, files=files)
        names = {link_id(ds.source_id, r.source_id): r.name for r in ds.resources}
        names.update({entry["id"]: r.name for r in ds.resources
                      if (entry := files.get(r.source_id))})
        found = dict.fromkeys(patch_label(op, names) for op in minimal_patch(doc, wanted))
        held = doc.get("resources") or {}
        for res in ds.resources:
            if not res.hosted:
                continue
            label = f"resource {res.name!r}"
            copy = held.get(files[res.source_id]["id"]) if res.source_id in files else None
            if copy is None:
                found[f"{label} file missing"] = None
            elif None not in (res.size, copy.get("size")) and copy["size"] != res.size:
                found[f"{label} size {copy['size']} (source {res.size})"] = None
            elif (md5 := md5_of(res)) and copy.get("hash") and copy["hash"] != md5:
                found[f"{label} hash differs"] = None
        return list(found)

    def _known_files(self, ds: Dataset, current: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Source resource id → ``{id, version}`` of the files already on the site: from
        the journal (written as each upload completes), else from the dataset's map."""
        custom = current.get("custom")
        custom = custom if isinstance(custom, dict) else {}
        entries = custom.get(RESOURCES)
        entries = entries if isinstance(entries, dict) else {}
        held = current.get("resources") or {}
        known: dict[str, dict[str, Any]] = {}
        for res in ds.resources:
            if not res.hosted:
                continue
            for found in (self.journal.get(FILE_ENTRY, f"{ds.source_id}/{res.source_id}"),
                          entries.get(res.source_id)):
                if isinstance(found, dict) and found.get("id") in held:
                    known[res.source_id] = {"id": found["id"], "version": found.get("version")}
                    break
        return known

    async def _sync_files(self, ds: Dataset, current: dict[str, Any],
                          known: dict[str, dict[str, Any]],
                          transfer: FileTransfer) -> tuple[dict[str, Any], dict[str, str],
                                                           list[str]]:
        """Upload the files the site lacks or holds an old version of; ``known`` is
        updated in place. Returns the dataset as it now is, what became of each file sent
        (source resource id → ``"created"`` or ``"updated"``), and the files the site
        refused for their size."""
        actions: dict[str, str] = {}  # this dataset's files only
        refused: list[str] = []
        referenced = {entry["id"] for entry in known.values()}
        hosted = [res for res in ds.resources if res.hosted]
        for position, res in enumerate(hosted):
            version = res.content_version
            send, replaced = self._file_step(res, current.get("resources") or {}, known,
                                             referenced)
            if not send:
                continue
            try:
                uploaded = await self._upload(current, res, replaced, position, transfer)
            except PayloadTooLarge as error:
                refused.append(f"file {upload_name(res)}: {error}")
                continue
            current = uploaded.dataset
            known[res.source_id] = {"id": uploaded.resource_id, "version": version}
            referenced.add(uploaded.resource_id)
            self.journal.record(FILE_ENTRY, f"{ds.source_id}/{res.source_id}",
                                id=uploaded.resource_id, version=version)
            actions[res.source_id] = "created" if replaced is None else "updated"
        return current, actions, refused

    @staticmethod
    def _file_step(res: Resource, held_all: Mapping[str, Any], known: dict[str, dict[str, Any]],
                   referenced: set[str]) -> tuple[bool, str | None]:
        """Whether the file of ``res`` is to be sent, and the id of the file it replaces
        (None: a new one). ``known`` and ``referenced`` learn an unrecorded upload that is
        adopted, and ``known`` the version of a file that is the source's already."""
        version, md5 = res.content_version, md5_of(res)
        have = known.get(res.source_id)
        if have is None and (adopted := _orphan(held_all, res, referenced, md5)):
            # A file an interrupted run uploaded before it could record it.
            have = known[res.source_id] = {"id": adopted, "version": None}
            referenced.add(adopted)
        held = held_all.get(have["id"]) if have else None
        if held is not None and _same(held, have, res, version, md5):
            if have and have.get("version") != version:
                have["version"] = version
            return False, None
        return True, have["id"] if held is not None and have else None

    def _check_size(self, res: Resource) -> None:
        """Refuse a file of known size over ``max_file_size`` before it is sent."""
        if self.max_size is not None and res.size is not None and res.size > self.max_size:
            raise PayloadTooLarge(f"{res.size:,} bytes is over the site's limit of "
                                  f"{self.max_size:,} (max_file_size)")

    async def _upload(self, current: dict[str, Any], res: Resource, resource_id: str | None,
                      position: int, transfer: FileTransfer) -> Uploaded:
        """Stream one file in.

        Raises:
            PayloadTooLarge: the site refuses it for its size (checked first against
                ``max_file_size``, so a known-size file is not sent just to be refused).
        """
        self._check_size(res)
        fields, name = upload_fields(res), upload_name(res)
        if resource_id is None:
            fields["order"] = position  # new files keep the source's order
        state = UploadState(before=frozenset(current.get("resources") or {}))

        async def fetch() -> dict[str, Any]:
            return await self._get(current["id"])

        async def put(upload: Upload, attempt: int) -> Uploaded:
            return await self.uploader.send(current["id"], replace(upload, filename=name),
                                            fields, state, fetch, resource_id=resource_id)

        try:
            uploaded, _ = await transfer.send(res, put)
        except PayloadTooLarge as error:
            raise PayloadTooLarge(f"refused as too large ({res.size or '?'} bytes): {error}",
                                  error.status) from None
        except AuthError as error:
            raise SkippableError(f"no permission: {error}", error.status) from None
        return uploaded


def _same(held: Mapping[str, Any], have: Mapping[str, Any] | None, res: Resource,
          version: str | None, md5: str | None) -> bool:
    """Whether the file on the site is the source's: by MD5 when the source gives one,
    else by the version recorded at upload and the size."""
    if res.size is not None and held.get("size") != res.size:
        return False
    if md5 is not None:
        return held.get("hash") == md5
    return version is not None and have is not None and have.get("version") == version


def _orphan(held: Mapping[str, Any], res: Resource, referenced: set[str],
            md5: str | None) -> str | None:
    """An unrecorded file with this resource's title and size (and MD5, if known)."""
    for rid, item in held.items():
        if (rid not in referenced and isinstance(item, dict) and item.get("title") == res.name
                and res.size is not None and item.get("size") == res.size
                and (md5 is None or item.get("hash") == md5)):
            return rid
    return None


def _mark(doc: Mapping[str, Any]) -> Any:
    custom = doc.get("custom")
    return custom.get(MARK) if isinstance(custom, Mapping) else None


def _hide_operations(doc: Mapping[str, Any]) -> Operations:
    if doc.get("sharing") == "private":
        return []
    return [{"op": "replace", "path": "/sharing", "value": "private"}]
