"""Dataset handlers of the Opendatasoft simulator: create, list, read, update and delete a
dataset, and its publication jobs (publish, publish_metadata, unpublish, abort, status)."""

from __future__ import annotations

import copy
import re
import time
import unicodedata
from typing import Any

from aiohttp import web

from bulkport.testing.core.responses import json_response
from bulkport.testing.ods.errors import OdsError, invalid, invalid_status
from bulkport.testing.ods.extract import CsvSource, FileRecords
from bulkport.testing.ods.http import dataset_of, paginate, read_json
from bulkport.testing.ods.metadata import REQUIRED, check_metadata
from bulkport.testing.ods.store import BUSY, OdsDataset, OdsStore, Publication, default_security, iso

DATASET_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:90] or "dataset"


def _dataset_fields(store: OdsStore, body: dict[str, Any], current: OdsDataset | None,
                    errors: dict[str, list[str]]) -> dict[str, Any]:
    """Validated top-level fields of a dataset create (``current`` None) or update."""
    fields: dict[str, Any] = {}
    dataset_id = body.get("dataset_id")
    if dataset_id is not None:
        owner = store.dataset_ids.get(dataset_id) if isinstance(dataset_id, str) else None
        if not isinstance(dataset_id, str) or not DATASET_ID_RE.match(dataset_id):
            errors["dataset_id"] = ["Only lowercase letters, digits, '-' and '_' are allowed "
                                    "(100 characters at most)."]
        elif owner is not None and (current is None or owner != current.uid):
            errors["dataset_id"] = ["dataset with this dataset id already exists."]
        elif current is not None and dataset_id != current.dataset_id and (
                current.publication.is_published):
            errors["dataset_id"] = ["The dataset_id of a published dataset cannot change."]
        fields["dataset_id"] = dataset_id
    if "is_restricted" in body:
        if not isinstance(body["is_restricted"], bool):
            errors["is_restricted"] = ["Must be a valid boolean."]
        fields["is_restricted"] = body["is_restricted"]
    if "default_security" in body:
        fields["default_security"] = _security(body["default_security"], errors)
    if "metadata" not in body:
        errors["metadata"] = [REQUIRED]
    else:
        fields["metadata"] = check_metadata(store.templates, body["metadata"], "metadata.",
                                            errors)
    return fields


_QUOTA_UNITS = ("second", "minute", "hour", "day", "month")


def _security(value: Any, errors: dict[str, list[str]]) -> dict[str, Any]:
    """A ``default_security`` ruleset (``DatasetSecurity``) over the defaults."""
    if not isinstance(value, dict):
        errors["default_security"] = ['Expected a dictionary of items but got type '
                                      f'"{type(value).__name__}".']
        return default_security()
    problems: dict[str, str] = {}
    if "is_data_visible" in value and not isinstance(value["is_data_visible"], bool):
        problems["is_data_visible"] = "Must be a valid boolean."
    fields = value.get("visible_fields")
    if fields is not None and (not isinstance(fields, list) or not all(
            isinstance(f, str) and f for f in fields) or len(set(fields)) != len(fields)):
        problems["visible_fields"] = "Expected null or a list of distinct field names."
    if "filter_query" in value and not isinstance(value["filter_query"], str):
        problems["filter_query"] = "Not a valid string."
    quota = value.get("api_calls_quota")
    if quota is not None and (not isinstance(quota, dict)
                              or quota.get("unit", "day") not in _QUOTA_UNITS
                              or isinstance(quota.get("limit", 0), bool)
                              or not isinstance(quota.get("limit", 0), (int, float))):
        problems["api_calls_quota"] = (f'Expected null or {{"unit": one of '
                                       f'{", ".join(_QUOTA_UNITS)}, "limit": a number}}.')
    for name, message in problems.items():
        errors[f"default_security.{name}"] = [message]
    return {**default_security(), **value}


async def list_datasets(request: web.Request) -> web.StreamResponse:
    store: OdsStore = request.app["store"]
    now = time.time()
    wanted = request.query.get("dataset_id")
    if wanted is not None:
        found = store.by_dataset_id(wanted)
        datasets = [found] if found else []
    else:
        datasets = list(store.datasets.values())
    page = paginate(request, datasets)
    page["results"] = [d.out(now) for d in page["results"]]
    return json_response(page)


async def create_dataset(request: web.Request) -> web.StreamResponse:
    store: OdsStore = request.app["store"]
    body = await read_json(request)
    errors: dict[str, list[str]] = {}
    fields = _dataset_fields(store, body, None, errors)
    if errors:
        raise invalid(errors)
    uid = store.new_uid("da_")
    dataset_id = fields.get("dataset_id")
    if dataset_id is None:  # derived from the title, made unique
        title = fields["metadata"]["default"]["title"]["value"]
        base = dataset_id = _slug(title)
        n = 1
        while dataset_id in store.dataset_ids:
            n += 1
            dataset_id = f"{base}-{n}"
    now = iso()
    dataset = OdsDataset(uid=uid, dataset_id=dataset_id, created_at=now, updated_at=now,
                         is_restricted=fields.get("is_restricted", False),
                         metadata=fields["metadata"],
                         default_security=fields.get("default_security", default_security()))
    store.add(dataset)
    return json_response(dataset.out(time.time()), 201)


async def get_dataset(request: web.Request) -> web.StreamResponse:
    return json_response(dataset_of(request).out(time.time()))


async def update_dataset(request: web.Request) -> web.StreamResponse:
    store: OdsStore = request.app["store"]
    dataset = dataset_of(request)
    errors: dict[str, list[str]] = {}
    fields = _dataset_fields(store, await read_json(request), dataset, errors)
    if errors:
        raise invalid(errors)
    if fields.get("dataset_id", dataset.dataset_id) != dataset.dataset_id:
        del store.dataset_ids[dataset.dataset_id]
        dataset.dataset_id = fields["dataset_id"]
        store.dataset_ids[dataset.dataset_id] = dataset.uid
    dataset.metadata = fields["metadata"]
    dataset.is_restricted = fields.get("is_restricted", dataset.is_restricted)
    dataset.default_security = fields.get("default_security", dataset.default_security)
    dataset.touch()
    return json_response(dataset.out(time.time()))


async def delete_dataset(request: web.Request) -> web.StreamResponse:
    request.app["store"].remove(dataset_of(request))
    return web.Response(status=204)

def _publication(dataset: OdsDataset) -> tuple[Publication, float, str]:
    now = time.time()
    publication = dataset.publication
    return publication, now, publication.current(now)


def _refuse(status: str, allowed: str) -> OdsError:
    return invalid_status(f"Invalid precondition, dataset status is '{status}' but must be "
                          f"one of '{allowed}'")


def _empty_file_problem(store: OdsStore, dataset: OdsDataset) -> str | None:
    for resource in dataset.resources.values():
        source = resource["datasource"]
        if source.get("type") != "uploaded_file":
            continue
        record = dataset.files.get(source["file"]["uid"])
        if record is not None and record.size == 0:
            return (f"Resource \"{resource['title']}\" ({resource['uid']}): the file "
                    f"\"{record.filename}\" is empty, no record could be extracted.")
    return None


def file_records(store: OdsStore, dataset: OdsDataset) -> FileRecords | None:
    """What publishing extracts from the dataset's uploaded CSV resources (None: there is
    none, the records stay what they were)."""
    sources = []
    for resource in dataset.resources.values():
        source = resource["datasource"]
        if resource.get("type") != "csvfile" or source.get("type") != "uploaded_file":
            continue
        blob = store.blobs.get(source["file"]["uid"])
        if blob is not None:
            sources.append(CsvSource.of(blob, resource.get("params") or {}))
    return FileRecords(tuple(sources)) if sources else None


async def publish(request: web.Request) -> web.StreamResponse:
    store: OdsStore = request.app["store"]
    dataset = dataset_of(request)
    publication, now, status = _publication(dataset)
    if status in BUSY:
        raise _refuse(status, "idle, error, limit_reached")
    if not dataset.resources:
        raise invalid_status("The dataset has no resource: there is nothing to publish.")
    if dataset.metadata.get("internal", {}).get("draft", {}).get("value") is True:
        raise invalid_status("The dataset is a draft: it cannot be published.")
    problem = _empty_file_problem(store, dataset)
    dataset.published_metadata = copy.deepcopy(dataset.metadata)
    records = file_records(store, dataset)
    if records is not None and not problem:
        store.records[dataset.uid] = records
    publication.start(now, request.app["processing_time"], "error" if problem else "idle",
                      problem)
    return json_response({"detail": "ok"})


async def publish_metadata(request: web.Request) -> web.StreamResponse:
    """Make a published dataset's current metadata public, with no processing job (its
    records stay as they are, and so does its status)."""
    dataset = dataset_of(request)
    status = dataset.status
    if status in BUSY:
        raise _refuse(status, "idle, error, limit_reached")
    if not dataset.is_published:
        raise invalid_status("The dataset is not published: publish it first.")
    dataset.published_metadata = copy.deepcopy(dataset.metadata)
    return json_response({"detail": "ok"})


async def unpublish(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    publication, now, status = _publication(dataset)
    if status in BUSY:
        raise _refuse(status, "idle, error, limit_reached")
    publication.stop(now, published=False, previous=status)
    return json_response({"detail": "ok"})


async def abort(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    publication, now, status = _publication(dataset)
    if status not in ("queued", "processing"):
        raise _refuse(status, "queued, processing")
    job = publication.job
    publication.stop(now, published=bool(job and job.was_published),
                     previous="aborting_processing")
    return json_response({"detail": "ok"})


async def get_status(request: web.Request) -> web.StreamResponse:
    return json_response(dataset_of(request).publication.view(time.time()))
