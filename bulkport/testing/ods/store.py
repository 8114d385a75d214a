"""The Opendatasoft simulator's records: datasets, files, and the processing status.

The status is computed from timestamps when read: publishing starts a job that is
``queued`` for its first fifth, ``processing`` until ``processing_time`` has passed, then
settles to ``idle`` (published) or ``error``. No task runs in the background.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from bulkport.testing.core.faults import RequestStats
from bulkport.testing.core.files import BlobStore
from bulkport.testing.core.responses import iso as iso  # re-exported: the stamp of every record
from bulkport.testing.ods.metadata import Template, default_templates

BUSY = frozenset({"queued", "processing", "aborting_processing", "deleting", "saving_version"})
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_QUEUED_SHARE = 0.2


@dataclass
class FileRecord:
    """An uploaded resource file or an attachment (its body is ``store.blobs[uid]``)."""

    uid: str
    filename: str
    mimetype: str | None
    created_at: str
    size: int
    # An attachment's id in the explore API and on the portal, which is not its uid.
    public_id: str | None = None

    def out(self) -> dict[str, Any]:
        return {"uid": self.uid, "filename": self.filename, "mimetype": self.mimetype,
                "created_at": self.created_at}


@dataclass
class Job:
    """A publication in progress and how it will end."""

    started: float
    duration: float
    outcome: str  # "idle" or "error"
    message: str | None
    was_published: bool


@dataclass
class Publication:
    """Settled status (``status`` since ``since``) plus at most one running job."""

    is_published: bool = False
    status: str = "idle"
    previous: str | None = None
    since: float = field(default_factory=time.time)
    message: str | None = None
    job: Job | None = None

    def settle(self, now: float) -> None:
        job = self.job
        if job is not None and now >= job.started + job.duration:
            self.job = None
            self.status, self.previous = job.outcome, "processing"
            self.since = job.started + job.duration
            self.message = job.message
            self.is_published = job.outcome == "idle" or job.was_published

    def current(self, now: float) -> str:
        self.settle(now)
        if self.job is None:
            return self.status
        queued_until = self.job.started + self.job.duration * _QUEUED_SHARE
        return "queued" if now < queued_until else "processing"

    def view(self, now: float) -> dict[str, Any]:
        """``GET /datasets/{uid}/status/``."""
        status = self.current(now)
        job = self.job
        if job is None:
            previous, upcoming, since, message = self.previous, None, self.since, self.message
        elif status == "queued":
            previous, upcoming, since, message = self.status, "processing", job.started, None
        else:
            previous, upcoming = "queued", None
            since, message = job.started + job.duration * _QUEUED_SHARE, None
        published = self.is_published if job is None else job.was_published
        return {"status": status, "previous": previous, "next": upcoming, "since": iso(since),
                "is_published": published, "message": message, "records_errors": [],
                "params": {}}

    def start(self, now: float, duration: float, outcome: str, message: str | None) -> None:
        self.job = Job(now, duration, outcome, message, self.is_published)

    def stop(self, now: float, *, published: bool, previous: str) -> None:
        self.job = None
        self.status, self.previous, self.since, self.message = "idle", previous, now, None
        self.is_published = published


@dataclass
class OdsDataset:
    """One dataset; ``resources``, ``files`` and ``attachments`` are keyed by uid."""

    uid: str
    dataset_id: str
    created_at: str
    updated_at: str
    is_restricted: bool
    metadata: dict[str, dict[str, Any]]
    default_security: dict[str, Any]
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, FileRecord] = field(default_factory=dict)
    attachments: dict[str, FileRecord] = field(default_factory=dict)
    publication: Publication = field(default_factory=Publication)
    # The metadata the portal shows: set by a publish or a publish_metadata (None: never).
    published_metadata: dict[str, dict[str, Any]] | None = None

    @property
    def is_published(self) -> bool:
        """Whether the explore API serves the dataset now (a running job does not count)."""
        self.publication.settle(time.time())
        job = self.publication.job
        return job.was_published if job else self.publication.is_published

    @property
    def status(self) -> str:
        """The processing status now (``idle``, ``queued``, ``processing``, ``error``...)."""
        return self.publication.current(time.time())

    def out(self, now: float) -> dict[str, Any]:
        self.publication.settle(now)
        job = self.publication.job
        return {"uid": self.uid, "dataset_id": self.dataset_id, "created_at": self.created_at,
                "updated_at": self.updated_at,
                "is_published": job.was_published if job else self.publication.is_published,
                "is_restricted": self.is_restricted, "metadata": self.metadata,
                "default_security": self.default_security}

    def touch(self) -> None:
        self.updated_at = iso()

    def add_attachment(self, record: FileRecord) -> None:
        """Attach ``record``, under an explore id no other attachment of the dataset has."""
        taken = {a.public_id for a in self.attachments.values()}
        base = attachment_id(record.filename)
        record.public_id = next(candidate for n in range(1, len(taken) + 2)
                                if (candidate := base if n == 1 else f"{base}_{n}") not in taken)
        self.attachments[record.uid] = record


def attachment_id(filename: str) -> str:
    """The explore API's id of an attachment, made from its file name as the documents
    show it (``cities1000.zip`` → ``cities1000_zip``, ``file.csv`` → ``file_csv``)."""
    return re.sub(r"[^a-z0-9]", "_", filename.lower()) or "attachment"


def default_security() -> dict[str, Any]:
    return {"is_data_visible": True, "visible_fields": None, "filter_query": "",
            "api_calls_quota": None}


class OdsStore:
    """An Opendatasoft domain's content.

    Attributes tests may inspect: ``datasets`` (uid → :class:`OdsDataset`, with its
    ``resources``, ``files``, ``attachments`` and ``publication``), ``dataset_ids``
    (dataset_id → uid), ``blobs`` (file and attachment bodies by their uid),
    ``templates`` (name → :class:`Template`), ``apikeys`` (:class:`ApiKeys`), ``records``
    (dataset uid → the records the explore API exports) and ``stats`` (requests by label).
    """

    def __init__(self, *, custom_templates: dict[str, list[str]] | None = None,
                 seed: int | None = None, licenses: dict[str, str] | None = None,
                 themes: dict[str, str] | None = None) -> None:
        """``licenses`` and ``themes``: those configured on the domain (id → title); see
        :func:`~bulkport.testing.ods.metadata.default_templates`."""
        self.datasets: dict[str, OdsDataset] = {}
        self.dataset_ids: dict[str, str] = {}
        self.blobs = BlobStore()
        self.stats = RequestStats()
        self.templates: dict[str, Template] = default_templates(
            custom_templates, licenses=licenses, themes=themes)
        self.apikeys = ApiKeys(seed=seed)
        # Dataset uid → the records the explore API exports (an explore.RecordSet).
        self.records: dict[str, Any] = {}
        self._rng = random.Random(seed)

    def new_uid(self, prefix: str, taken: Any = ()) -> str:
        while True:
            uid = prefix + "".join(self._rng.choices(_ALPHABET, k=6))
            if uid not in self.datasets and uid not in self.blobs and uid not in taken:
                return uid

    def by_dataset_id(self, dataset_id: str) -> OdsDataset | None:
        uid = self.dataset_ids.get(dataset_id)
        return self.datasets.get(uid) if uid else None

    def add(self, dataset: OdsDataset) -> None:
        self.datasets[dataset.uid] = dataset
        self.dataset_ids[dataset.dataset_id] = dataset.uid

    def remove(self, dataset: OdsDataset) -> None:
        self.datasets.pop(dataset.uid, None)
        self.dataset_ids.pop(dataset.dataset_id, None)
        self.records.pop(dataset.uid, None)
        for uid in (*dataset.files, *dataset.attachments):
            self.blobs.delete(uid)

    def close(self) -> None:
        """Remove the uploaded bodies from disk."""
        self.blobs.close()


@dataclass
class ApiKey:
    uid: str
    key: str
    label: str
    username: str
    created_at: str
    permissions: list[str]
    revoked_at: str | None = None
    revocation_reason: str = ""

    def out(self) -> dict[str, Any]:
        return {"uid": self.uid, "label": self.label, "key": self.key,
                "permissions": self.permissions, "created_at": self.created_at,
                "user": {"username": self.username},
                "revocation_status": {"revoked_at": self.revoked_at,
                                      "revocation_reason": self.revocation_reason},
                "is_revoked": self.revoked_at is not None}


class ApiKeys:
    """The domain's API keys.

    Attributes tests may inspect: ``keys`` (uid → :class:`ApiKey`) and ``admins`` (the
    user names with domain administration rights).
    """

    def __init__(self, *, seed: int | None = None) -> None:
        self.keys: dict[str, ApiKey] = {}
        self.admins: set[str] = set()
        self._by_value: dict[str, ApiKey] = {}
        self._rng = random.Random(seed)

    def create(self, username: str, label: str = "", *, created_at: str | None = None,
               permissions: list[str] | None = None, key: str | None = None) -> ApiKey:
        while (uid := "ak_" + "".join(self._rng.choices(_ALPHABET, k=6))) in self.keys:
            pass
        value = key or self._rng.randbytes(28).hex()
        record = ApiKey(uid=uid, key=value, label=label, username=username,
                        created_at=created_at or iso(), permissions=list(permissions or []))
        self.keys[uid] = record
        self._by_value[value] = record
        return record

    def find(self, value: str) -> ApiKey | None:
        return self._by_value.get(value)

    def user_for(self, value: str) -> str | None:
        """The owner of a live key, or None."""
        record = self._by_value.get(value)
        return record.username if record is not None and record.revoked_at is None else None

    def visible_to(self, username: str) -> list[ApiKey]:
        keys = sorted(self.keys.values(), key=lambda k: (k.created_at, k.uid))
        if username in self.admins:
            return keys
        return [k for k in keys if k.username == username]
