"""Opendatasoft Automation API v1.0 adapter (target side).

A dataset is found by its ``dataset_id``. Opendatasoft has no free-form extras, so the
ownership mark a mirror and ``verify`` need is a field of a custom metadata template named
by ``[target] mark_field`` ("template.field"), which receives the source id. Without it the
mirror's state is the only proof that bulkport wrote a dataset, and verify cannot run.
Which ``dataset_id`` each source record took is kept in the state store
(:mod:`bulkport.portals.ods.claims`); where the domain then shows the dataset and serves its
files is :mod:`bulkport.portals.ods.public`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import replace
from typing import Any

import anyio

from bulkport.checkpoint import Journal
from bulkport.errors import (
    ConfigError,
    Conflict,
    NotFound,
    SkippableError,
    ValidationError,
)
from bulkport.http import HttpClient
from bulkport.model import Dataset
from bulkport.portals.base import QUIET, CheckSteps, Written
from bulkport.portals.ods.access import check_key, check_mapped_ids
from bulkport.portals.ods.api import OdsApi, total_count
from bulkport.portals.ods.claims import ID_ENTRY, DatasetIds
from bulkport.portals.ods.files import FILE_ENTRY, DatasetFiles, outdated
from bulkport.portals.ods.mapping import OdsDataset, resource_body, to_ods
from bulkport.portals.ods.public import PublicUrls
from bulkport.portals.ods.settings import OdsTargetSettings
from bulkport.portals.ods.source import OdsSource
from bulkport.report import Report
from bulkport.settings import Options
from bulkport.transfer import FileTransfer

__all__ = ["FILE_ENTRY", "ID_ENTRY", "OdsTarget", "dataset_id_variant"]

BUSY = frozenset({"queued", "processing", "aborting_processing", "deleting", "saving_version"})
# The metadata keys bulkport writes, per template; any other key on the target is kept.
OWNED = {
    "default": {"title", "description", "keyword", "modified", "language", "publisher",
                "references"},
    "internal": {"license_id", "theme_id"},
}


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Metadata values without the read-only parts (``remote_value``)."""
    return {k: {"value": v.get("value")} for k, v in values.items() if isinstance(v, dict)}


def _template_changes(have: dict[str, Any], ours: dict[str, Any], owned: set[str]) -> list[str]:
    """The fields of one template bulkport owns whose value differs from ``ours``."""
    return sorted(k for k in owned | set(ours) if have.get(k) != ours.get(k))


def _mark_of(dataset: Any, mark: tuple[str, str]) -> Any:
    """The value of the ownership mark in a dataset as the API lists it (None: unmarked)."""
    template, name = mark
    metadata = dataset.get("metadata") if isinstance(dataset, dict) else None
    value = ((metadata or {}).get(template) or {}).get(name)
    return value.get("value") if isinstance(value, dict) else None


def _unmatched(kind: str, want: Counter[str], have: Counter[str]) -> list[str]:
    """What the target lacks and what it holds beyond ``want``, by name."""
    return ([f"{kind} {name!r} missing" for name in sorted(want - have)]
            + [f"{kind} {name!r} on the target only" for name in sorted(have - want)])


def dataset_id_variant(dataset_id: str, source_id: str) -> str:
    """A second, still deterministic ``dataset_id`` for when another record's copy holds
    the first: the first with a suffix made from the source id."""
    suffix = "-" + hashlib.sha1(source_id.encode()).hexdigest()[:8]
    return dataset_id[:100 - len(suffix)].rstrip("-_") + suffix


class OdsTarget:
    """Writes datasets into an Opendatasoft domain: find-or-create, metadata, files, publish."""

    def __init__(self, settings: OdsTargetSettings, client: HttpClient, options: Options,
                 journal: Journal, report: Report) -> None:
        self.client = client
        self.settings = settings
        self.site = OdsApi(settings, client)
        self.api = self.site.base
        self.journal = journal
        self.report = report
        self.run_options = options
        self.publish = options.publish
        self.status_poll = options.status_poll
        self.status_timeout = options.status_timeout
        self._empty_at_start = False  # set by check(): no dataset can pre-exist then
        self.ids = DatasetIds(journal)  # who holds which dataset_id: in the state store
        self.public = PublicUrls(settings.url, client)
        self.files = DatasetFiles(self.site, client, journal, report, self.public)
        self.options = settings.map_options()
        self.owned = {**OWNED}
        mark = self.options.mark_field
        paths = [*self.options.fields, *([mark] if mark else [])]
        if self.options.extras_template:
            paths.append(f"{self.options.extras_template}.{self.options.extras_field}")
        for path in paths:
            template, _, name = path.partition(".")
            self.owned[template] = self.owned.get(template, set()) | {name}

    def describe(self) -> str:
        return self.site.describe()

    async def check(self, steps: CheckSteps = QUIET) -> None:
        """Fail fast on a wrong key, a missing extras or mark template, or licence and theme
        ids the domain does not have, before any write; learn the domain's templates, so
        that fields kept from another Opendatasoft domain only go back where this one has
        them.

        Steps: ``key``, ``templates``, ``ids`` (when the job maps licences or themes),
        ``extras_template`` and ``mark_field`` (when set).
        """
        steps.begin("key")
        page = await check_key(self.site, "target", "create, edit and publish datasets")
        total = total_count(page)
        self._empty_at_start = total == 0
        steps.passed(f"reachable, Automation API v1.0, key accepted "
                     f"({'?' if total is None else f'{total:,}'} datasets on the domain)")
        steps.begin("templates")
        listed = await self.site.list_all("/metadata/templates/")
        schema = {t["name"]: {f["name"]: f.get("type") or "text" for f in t.get("schema") or []
                              if isinstance(f, dict) and isinstance(f.get("name"), str)}
                  for t in listed if isinstance(t, dict) and isinstance(t.get("name"), str)}
        steps.passed(f"metadata templates {', '.join(sorted(schema)) or 'none'}")
        if self.settings.licenses or self.settings.themes:
            steps.begin("ids")
        found = check_mapped_ids(listed, {"licenses": self.settings.licenses,
                                          "themes": self.settings.themes}, self.describe())
        if found:
            steps.passed(", ".join(found))
        self.options = replace(self.options, schema=schema)
        self._check_templates(schema, steps)

    def _check_templates(self, schema: dict[str, dict[str, str]], steps: CheckSteps) -> None:
        """The extras and mark fields the settings name are fields of the domain's templates.

        Raises:
            ConfigError: one of them is not.
        """
        template = self.options.extras_template
        if template:
            steps.begin("extras_template")
            if template not in schema:
                raise ConfigError(
                    f"[target] extras_template {template!r} does not exist on {self.settings.url}")
            if self.options.extras_field not in schema[template]:
                raise ConfigError(
                    f"[target] extras_field {self.options.extras_field!r} is not a field of "
                    f"template {template!r} on {self.settings.url}"
                )
            steps.passed(f"template {template!r} has field {self.options.extras_field!r}")
        if self.options.mark is not None:
            steps.begin("mark_field")
            template, name = self.options.mark
            if template not in schema:
                raise ConfigError(f"[target] mark_field {self.options.mark_field!r}: template "
                                  f"{template!r} does not exist on {self.settings.url}")
            if name not in schema[template]:
                raise ConfigError(f"[target] mark_field {self.options.mark_field!r}: {name!r} "
                                  f"is not a field of template {template!r} on {self.settings.url}")
            steps.passed(f"template {template!r} has field {name!r}")

    async def find(self, dataset_id: str) -> dict[str, Any] | None:
        page = await self.site.call("GET", "/datasets/", params={"dataset_id": dataset_id})
        results = page.get("results", []) if isinstance(page, dict) else []
        return next((d for d in results if d.get("dataset_id") == dataset_id), None)


    async def plan(self, ds: Dataset) -> str:
        """What :meth:`upsert` would do (``"create"``, ``"update"`` or ``"unchanged"``),
        found by the same comparisons, reading only.

        Raises:
            SkippableError: the dataset_id is held by a dataset bulkport did not make.
        """
        mapped, known = self._mapped(ds)
        candidates = self._candidates(ds, mapped, known)
        for dataset_id in candidates:
            existing = await self.find(dataset_id)
            if existing is None:
                return "create"
            if self._is_ours(existing, ds.source_id):
                break
        else:
            raise self._all_held(candidates)
        mapped = replace(mapped, dataset_id=dataset_id)
        if self._metadata_changes(existing.get("metadata") or {}, mapped.metadata):
            return "update"
        return "update" if await self.files.pending(existing["uid"], mapped) else "unchanged"

    async def upsert(self, ds: Dataset, transfer: FileTransfer) -> Written:
        """Create or update one dataset with its files, and publish it (unless the job
        says not to).

        Returns:
            What became of it: its ``dataset_id``, its page, and each hosted file with the
            URL the domain serves it at (see :mod:`bulkport.portals.ods.public`).

        Raises:
            SkippableError: this dataset failed (the run goes on).
        """
        mapped, known = self._mapped(ds)
        for note in mapped.notes:
            self.report.note(note)
        mapped, existing, created = await self._take_id(ds, mapped, known)
        if created:
            outcome, changed = "created", True
        else:
            changed = await self._update_metadata(existing, mapped)
            outcome = "updated" if changed else "unchanged"
        uid = existing["uid"]
        files = await self.files.sync(ds, uid, mapped, transfer, fresh=created)
        if any(f.action != "unchanged" for f in files):
            changed = True
            outcome = "updated" if outcome == "unchanged" else outcome
        published = bool(existing.get("is_published"))
        if self.publish and await self._publish(uid, mapped, changed or not published):
            published = True
        return Written(outcome, mapped.dataset_id,
                       self.public.page(mapped.dataset_id, published=published),
                       await self.files.urls(mapped.dataset_id, uid, files, published))

    def _candidates(self, ds: Dataset, mapped: OdsDataset, known: str | None) -> list[str]:
        """The dataset_ids ``ds`` may take, in order: the one it has (journaled, or an
        earlier run's), else the one mapped from its name and then that one's variant."""
        if known is not None:
            return [mapped.dataset_id]
        return [mapped.dataset_id, dataset_id_variant(mapped.dataset_id, ds.source_id)]

    def _all_held(self, candidates: list[str]) -> SkippableError:
        return SkippableError(f"dataset_ids {', '.join(candidates)} on {self.describe()} hold "
                              "copies of other source records")

    async def _take_id(self, ds: Dataset, mapped: OdsDataset, known: str | None
                       ) -> tuple[OdsDataset, dict[str, Any], bool]:
        """Find or create the dataset ``ds`` is written as: the first candidate dataset_id
        that is free or holds ``ds``'s copy (another record's copy makes it take the next).

        Returns:
            ``mapped`` with that dataset_id, the dataset, and whether this call created it.

        Raises:
            SkippableError: a dataset bulkport did not make holds the dataset_id, or every
                candidate holds another record's copy.
        """
        candidates = self._candidates(ds, mapped, known)
        for dataset_id in candidates:
            mapped = replace(mapped, dataset_id=dataset_id)
            # One claim of a dataset_id at a time: another record's create of it in this
            # run is then in the state store before this one looks.
            async with self.ids.lock(dataset_id):
                # On a domain that was empty when the run began, a dataset can only exist
                # if this run made it, so it is created without a lookup first. dataset_id
                # is unique on a domain: a create that finds it taken is refused, never
                # duplicated.
                fresh = self._empty_at_start and self.ids.holder(dataset_id) is None
                existing = None if fresh else await self.find(dataset_id)
                created = False
                if existing is None:
                    existing, created = await self._create_or_find(ds, mapped)
                if created or self._is_ours(existing, ds.source_id):
                    self.ids.claim(ds.source_id, dataset_id)
                    return mapped, existing, created
        raise self._all_held(candidates)

    async def _create_or_find(self, ds: Dataset,
                              mapped: OdsDataset) -> tuple[dict[str, Any], bool]:
        """Create the dataset, or find it when the domain says its dataset_id is taken.

        Returns:
            The dataset, and whether this call created it.
        """
        body = {"dataset_id": mapped.dataset_id, "is_restricted": ds.private,
                "metadata": mapped.metadata}
        try:
            return await self.client.create_once(
                lambda: self.site.call("POST", "/datasets/", json=body, retry=False),
                lambda: self.find(mapped.dataset_id),
            ), True
        except ValidationError as error:
            if isinstance(error, Conflict) or "dataset_id" in error.fields:
                found = await self.find(mapped.dataset_id)
                if found is not None:
                    return found, False
            raise

    def _metadata_changes(self, current: dict[str, Any],
                          mapped: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
        """Per template, the fields bulkport owns whose value on the target is not the
        mapped one (fields restored from "ods:" extras are bulkport's too, once written)."""
        changes: dict[str, list[str]] = {}
        for template in set(mapped) | (set(self.owned) & set(current)):
            differing = _template_changes(_plain(current.get(template) or {}),
                                          mapped.get(template, {}),
                                          self.owned.get(template, set()))
            if differing:
                changes[template] = differing
        return changes

    async def _update_metadata(self, existing: dict[str, Any], mapped: OdsDataset) -> bool:
        current = existing.get("metadata") or {}
        changes = self._metadata_changes(current, mapped.metadata)
        for template in changes:
            ours = mapped.metadata.get(template, {})
            owned = self.owned.get(template, set()) | set(ours)
            # PUT replaces the template: keep the keys bulkport does not own.
            merged = {**{k: v for k, v in _plain(current.get(template) or {}).items()
                         if k not in owned}, **ours}
            await self.site.call("PUT", f"/datasets/{existing['uid']}/metadata/{template}/",
                             json=merged)
        return bool(changes)

    # ---- what a mirror needs besides upserts ------------------------------------------
    # Without [target] mark_field, Opendatasoft records carry no ownership mark: the
    # mirror's state is the only proof that it wrote a dataset, so it only ever deletes
    # what its state lists.

    def key_for(self, ds: Dataset) -> str:
        """The ``dataset_id`` of ``ds`` on the domain. Once written, a copy stays there,
        also when the source renames the dataset (a published ``dataset_id`` is not to
        move): the journal, or the mirror's state, says where."""
        return self.ids.of(ds.source_id) or to_ods(ds, self.options).dataset_id

    def _mapped(self, ds: Dataset) -> tuple[OdsDataset, str | None]:
        """``ds`` mapped, under the dataset_id it has already if it has one (returned too)."""
        mapped = to_ods(ds, self.options)
        known = self.ids.of(ds.source_id)
        return (replace(mapped, dataset_id=known) if known else mapped), known

    def _is_ours(self, existing: dict[str, Any], source_id: str) -> bool:
        """Whether ``existing`` is the copy of ``source_id`` (False: another source record's
        copy, by its mark or by what this run and its state know).

        Without a ``mark_field`` a dataset nobody claimed is taken for the copy: nothing
        tells them apart. A copy without the mark is bulkport's when an earlier run recorded
        it (written before the field was set).

        Raises:
            SkippableError: the mark shows bulkport did not make it; it is left as it is.
        """
        mark = self.options.mark
        value = _mark_of(existing, mark) if mark is not None else None
        dataset_id = existing.get("dataset_id")
        if value:
            return bool(value == source_id)
        holder = self.ids.holder(str(dataset_id))
        if holder is not None or mark is None:
            return holder in (None, source_id)
        raise SkippableError(
            f"dataset_id {dataset_id!r} on {self.describe()} holds a dataset bulkport did not "
            f"make ({self.options.mark_field} is empty): left alone; rename "
            "one of them")

    async def _owned(self, source_id: str, key: str) -> tuple[str, dict[str, Any] | None]:
        """The dataset held as ``key``, if it is the copy of ``source_id``."""
        found = await self.find(key)
        if found is None:
            return "absent", None
        mark = self.options.mark
        if mark is not None and _mark_of(found, mark) != source_id:
            return "not_owned", None  # made or taken over by hand: never touched
        return "owned", found

    async def delete(self, source_id: str, key: str) -> str:
        """``DELETE /datasets/{uid}/`` for the dataset the mirror wrote as ``key``."""
        status, found = await self._owned(source_id, key)
        if found is None:
            return status
        try:
            await self.site.call("DELETE", f"/datasets/{found['uid']}/")
        except NotFound:  # an earlier attempt went through, its reply was lost
            return "absent"
        return "deleted"

    async def hide(self, source_id: str, key: str) -> str:
        """Unpublish the dataset the mirror wrote as ``key`` (it stays, unpublished)."""
        status, found = await self._owned(source_id, key)
        if found is None:
            return status
        if found.get("is_published"):
            await self.site.call("POST", f"/datasets/{found['uid']}/unpublish/")
        return "hidden"

    def is_hidden(self, record: Any) -> bool:
        """Whether a copy is unpublished, as :meth:`hide` leaves it."""
        return not (record.get("dataset") or {}).get("is_published")

    async def owned_records(self) -> list[tuple[str, Any]]:
        """Every dataset carrying the mark, as raw records with their resources and
        attachments (two more requests per copy, as many at once as connections).

        Raises:
            ConfigError: there is no ``mark_field`` to tell bulkport's copies apart.
        """
        mark = self.options.mark
        if mark is None:
            raise ConfigError(f"verify needs [target] mark_field on {self.describe()}: without "
                              "an ownership mark it cannot tell bulkport's copies from others")
        reader = OdsSource(self.settings.as_source(), self.client, self.run_options,
                           visitor_urls=False)
        send, receive = anyio.create_memory_object_stream[Any](0)
        found: list[tuple[str, Any]] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: reader.produce_where(
                send, lambda d: _mark_of(d, mark) is not None, page_concurrency=2))
            async with receive:
                async for record in receive:
                    if isinstance(record.get("error"), Exception):
                        raise record["error"]  # a copy that cannot be read: no verdict
                    found.append((str(_mark_of(record["dataset"], mark)), record))
        return found

    def differences(self, ds: Dataset, record: Any) -> list[str]:
        """What differs between ``ds`` and its copy ``record`` (from :meth:`owned_records`),
        reading and writing nothing: the metadata fields bulkport owns (as ``to_ods`` maps
        them), the publication of a copy with data, and the resources (by title) and
        attachments (by file name) bulkport uploads, with their counts. File contents are
        not compared: the API states no size or hash of a file.
        """
        mapped = to_ods(ds, self.options)
        dataset = record.get("dataset") or {}
        found = [f"{template}.{name}" for template, names in sorted(self._metadata_changes(
            dataset.get("metadata") or {}, mapped.metadata).items()) for name in names]
        if self.publish and mapped.resources and not dataset.get("is_published"):
            found.append("not published")
        found += _unmatched("resource",
                            Counter(resource_body(r, "")["title"] for r in mapped.resources),
                            Counter(str(r.get("title")) for r in record.get("resources") or []))
        found += _unmatched("attachment", Counter(r.filename for r in mapped.attachments),
                            Counter(str(a.get("filename"))
                                    for a in record.get("attachments") or []))
        for files, held, name in ((mapped.resources, record.get("resources") or [], "title"),
                                  (mapped.attachments, record.get("attachments") or [],
                                   "filename")):
            is_attachment = name == "filename"
            copies = {str(c.get(name)): c for c in reversed(held) if isinstance(c, dict)}
            for res in files:
                label = res.filename if is_attachment else resource_body(res, "")["title"]
                copy = copies.get(label)
                if copy is not None and outdated(res, copy, is_attachment):
                    found.append(f"{'attachment' if is_attachment else 'resource'} {label!r} "
                                 "is older than the source's file")
        return found

    async def _status(self, uid: str) -> dict[str, Any]:
        status = await self.site.call("GET", f"/datasets/{uid}/status/")
        return status if isinstance(status, dict) else {}

    async def _settle(self, uid: str) -> dict[str, Any]:
        """Poll the processing status until it leaves the busy states."""
        delay = self.status_poll
        with anyio.fail_after(self.status_timeout):
            while True:
                status = await self._status(uid)
                if status.get("status") not in BUSY:
                    return status
                await anyio.sleep(delay)
                delay = min(delay * 1.5, 5.0)

    async def _publish(self, uid: str, mapped: OdsDataset, needed: bool) -> bool:
        """Publish the dataset when ``needed``; True when it did (and it is published)."""
        if not needed:
            return False
        if not mapped.resources:
            self.report.note("dataset has no tabular resource: left unpublished (ODS refuses "
                             "to publish a dataset without one)")
            return False
        try:
            with anyio.fail_after(self.status_timeout):
                try:
                    await self.site.call("POST", f"/datasets/{uid}/publish/")
                except ValidationError as error:
                    # Busy: with a publish whose reply was lost, or with earlier work.
                    if error.code != "invalid_dataset_status":
                        raise
                    if not (await self._settle(uid)).get("is_published"):
                        await self.site.call("POST", f"/datasets/{uid}/publish/")
                await anyio.sleep(self.status_poll)
                status = await self._settle(uid)
        except TimeoutError:
            raise SkippableError(
                f"dataset {uid} still processing after {self.status_timeout:.0f}s") from None
        if status.get("status") != "idle" or not status.get("is_published", True):
            message = status.get("message") or status.get("errors") or status.get("status")
            raise SkippableError(f"dataset {uid}: processing ended in {status.get('status')!r}: "
                                 f"{message}")
        return True
