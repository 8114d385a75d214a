"""How the Opendatasoft target puts a dataset's hosted files on the domain, and where the
domain then serves them.

A tabular file becomes a resource (the file uploaded, then a resource pointing at it), any
other an attachment. A copy is found by name (a resource's title, an attachment's file
name, the n-th of that name) and sent again only when the source's file is newer than it.
Each file done is journaled (``FILE_ENTRY``); where it is served is
:mod:`bulkport.portals.ods.public`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import anyio

from bulkport.checkpoint import Journal
from bulkport.errors import NotFound, RetriableError, SkippableError, as_one_error
from bulkport.http import HttpClient, Upload
from bulkport.model import Dataset, Resource
from bulkport.moments import parse_time
from bulkport.portals.base import WrittenFile
from bulkport.portals.ods.api import OdsApi, parse_error
from bulkport.portals.ods.mapping import OdsDataset, resource_body
from bulkport.portals.ods.public import PublicUrls
from bulkport.report import Report
from bulkport.transfer import Digest, FileTransfer

FILE_ENTRY = "file"  # journal: "<source id>/<resource id>" → the file's uid on the domain


def outdated(res: Resource, found: dict[str, Any], is_attachment: bool) -> bool:
    """Whether the source's file is newer than the copy on the domain: the source's date
    against the moment the copy was written there (a resource's ``updated_at``, an
    attachment's ``created_at``). Without both dates the copy is kept."""
    written = found.get("created_at" if is_attachment else "updated_at")
    source = parse_time(res.modified)
    copy = parse_time(written if isinstance(written, str) else None)
    return source is not None and copy is not None and source > copy


def copy_of(res: Resource, is_attachment: bool, resources: list[dict[str, Any]],
            attachments: list[dict[str, Any]], seen: Counter[tuple[bool, str]]
            ) -> tuple[str, int, dict[str, Any] | None]:
    """The copy of ``res`` on the domain: the n-th attachment with its file name, or the
    n-th resource with its title, n counting the files of the dataset named alike so far
    (``seen``). Returns that name, n, and the copy (None: there is none)."""
    if is_attachment:
        match_key, value = (lambda a: a.get("filename")), res.filename
    else:
        match_key, value = (lambda r: r.get("title")), resource_body(res, "")["title"]
    n = seen[(is_attachment, value)]
    seen[(is_attachment, value)] += 1
    return value, n, nth(attachments if is_attachment else resources, match_key, value, n)


def nth(items: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any], value: Any,
        n: int) -> dict[str, Any] | None:
    """The ``n``-th item (0-based) whose ``key`` equals ``value``."""
    matches = [item for item in items if key(item) == value]
    return matches[n] if n < len(matches) else None


@dataclass(frozen=True)
class FileDone:
    """One hosted file as :meth:`DatasetFiles.sync` left it on the domain."""

    res: Resource
    is_attachment: bool
    action: str  # "created", "updated" or "unchanged"
    name: str  # the attachment's file name or the resource's title
    n: int  # the n-th file of the dataset with that name (from 0)
    copy: dict[str, Any]  # the resource or attachment as the Automation API gives it


class DatasetFiles:
    """The files of the datasets one target writes on one domain."""

    def __init__(self, site: OdsApi, client: HttpClient, journal: Journal, report: Report,
                 public: PublicUrls) -> None:
        self.site = site
        self.api = site.base
        self.client = client
        self.journal = journal
        self.report = report
        self.public = public

    async def sync(self, ds: Dataset, uid: str, mapped: OdsDataset, transfer: FileTransfer,
                   *, fresh: bool) -> list[FileDone]:
        """Upload what the target lacks, or holds an older copy of (by the source's date);
        say what became of each file."""
        if not mapped.resources and not mapped.attachments:
            return []
        resources = [] if fresh else await self.site.list_all(f"/datasets/{uid}/resources/")
        attachments = [] if fresh or not mapped.attachments else await self.site.list_all(
            f"/datasets/{uid}/attachments/")
        seen: Counter[tuple[bool, str]] = Counter()
        files = [*((res, False) for res in mapped.resources),
                 *((res, True) for res in mapped.attachments)]
        done: list[FileDone | None] = [None] * len(files)

        async def one(i: int, res: Resource, is_attachment: bool) -> None:
            key = f"{ds.source_id}/{res.source_id}"
            value, n, found = copy_of(res, is_attachment, resources, attachments, seen)
            if found is not None and not outdated(res, found, is_attachment):
                if self.journal.get(FILE_ENTRY, key) is None:
                    self.journal.record(FILE_ENTRY, key, target=found.get("uid"))
                done[i] = FileDone(res, is_attachment, "unchanged", value, n, found)
                return
            if found is not None and is_attachment:
                # An attachment cannot be replaced: the old one goes, then the new one comes
                # (killed in between, the next run finds none and adds it).
                await self.delete(f"/datasets/{uid}/attachments/{found['uid']}/")
            if is_attachment:
                target, digest = await transfer.send(
                    res, lambda up, attempt: self._attach(uid, up, attempt, value, n))
            elif found is not None:
                target, digest = await self._replace_file(uid, found, res, transfer)
            else:
                target, digest = await self._add_resource(uid, res, transfer)
            self.journal.record(FILE_ENTRY, key, target=target.get("uid"), size=digest.size,
                                sha256=digest.sha256)
            done[i] = FileDone(res, is_attachment, "created" if found is None else "updated",
                               value, n, target)

        with as_one_error():
            async with anyio.create_task_group() as tg:
                for i, (res, is_attachment) in enumerate(files):
                    tg.start_soon(one, i, res, is_attachment)
        return [f for f in done if f is not None]

    async def pending(self, uid: str, mapped: OdsDataset) -> bool:
        """Whether :meth:`sync` would upload something into dataset ``uid``."""
        if not mapped.resources and not mapped.attachments:
            return False
        resources = await self.site.list_all(f"/datasets/{uid}/resources/")
        attachments = await self.site.list_all(f"/datasets/{uid}/attachments/") if (
            mapped.attachments) else []
        seen: Counter[tuple[bool, str]] = Counter()
        for files, is_attachment in ((mapped.resources, False), (mapped.attachments, True)):
            for res in files:
                _, _, found = copy_of(res, is_attachment, resources, attachments, seen)
                if found is None or outdated(res, found, is_attachment):
                    return True
        return False

    async def _attach(self, uid: str, upload: Upload, attempt: int, filename: str,
                      n: int) -> dict[str, Any]:
        path = f"/datasets/{uid}/attachments/"
        if attempt > 1:
            found = nth(await self.site.list_all(path), lambda a: a.get("filename"), filename, n)
            if found is not None:
                return found
        response = await self.client.upload("POST", self.api + path, upload, errors=parse_error)
        return cast(dict[str, Any], response.json())

    async def _upload_file(self, uid: str, res: Resource,
                           transfer: FileTransfer) -> tuple[dict[str, Any], Digest]:
        """Upload the bytes of ``res`` to the dataset's file store (not yet a resource)."""
        async def put(upload: Upload, _attempt: int) -> dict[str, Any]:
            # A retried upload leaves at most an unused file; it is never a dataset resource.
            response = await self.client.upload(
                "POST", f"{self.api}/datasets/{uid}/resources/files/", upload, errors=parse_error)
            return cast(dict[str, Any], response.json())

        return await transfer.send(res, put)

    async def _replace_file(self, uid: str, found: dict[str, Any], res: Resource,
                            transfer: FileTransfer) -> tuple[dict[str, Any], Digest]:
        """Point the resource ``found`` at a new upload of ``res`` (a PUT: safe to retry)."""
        file, digest = await self._upload_file(uid, res, transfer)
        updated = await self.site.call("PUT", f"/datasets/{uid}/resources/{found['uid']}/",
                                       json=resource_body(res, file["uid"]))
        return updated if isinstance(updated, dict) else found, digest

    async def delete(self, path: str) -> None:
        try:
            await self.site.call("DELETE", path)
        except NotFound:  # an earlier attempt went through, its reply was lost
            pass

    async def _add_resource(self, uid: str, res: Resource,
                            transfer: FileTransfer) -> tuple[dict[str, Any], Digest]:
        file, digest = await self._upload_file(uid, res, transfer)
        body = resource_body(res, file["uid"])

        async def lookup() -> dict[str, Any] | None:
            listed = await self.site.list_all(f"/datasets/{uid}/resources/")
            return next((r for r in listed
                         if (r.get("datasource") or {}).get("file", {}).get("uid") == file["uid"]),
                        None)

        created = await self.client.create_once(
            lambda: self.site.call("POST", f"/datasets/{uid}/resources/", json=body, retry=False),
            lookup)
        return created, digest

    async def urls(self, dataset_id: str, uid: str, files: list[FileDone],
                   published: bool) -> tuple[WrittenFile, ...]:
        """Where the domain serves each file now: to every visitor once the dataset is
        published (the export of its records, the attachment's link), else to a key only,
        through the Automation API."""
        public_id: Callable[[str, int], str | None] | None = None
        if published and any(f.is_attachment for f in files):
            try:
                public_id = await self.public.attachment_ids(dataset_id)
            except (SkippableError, RetriableError) as error:
                self.report.note("the Explore API did not list the attachments of a published "
                                 f"dataset ({type(error).__name__}): their Automation API URLs "
                                 "are given instead")
        written = []
        for f in files:
            if not f.is_attachment:
                file_uid = ((f.copy.get("datasource") or {}).get("file") or {}).get("uid")
                body = resource_body(f.res, "")
                url = (self.public.export(dataset_id, body["type"],
                                          body["params"].get("separator", ","))
                       if published or not isinstance(file_uid, str)
                       else self.public.resource_file(uid, file_uid))
            else:
                found = public_id(f.name, f.n) if public_id is not None else None
                url = (self.public.attachment(dataset_id, found) if found
                       else self.public.attachment_file(uid, str(f.copy.get("uid"))))
            written.append(WrittenFile(f.res.source_id, f.action, url))
        return tuple(written)
