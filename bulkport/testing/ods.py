"""Opendatasoft Automation API v1.0 simulator over an in-memory store.

Everything lives under ``/api/automation/v1.0/`` and every path ends with ``/``. Auth is
``Authorization: apikey KEY`` or ``?apikey=KEY``; errors are ``{error_code, message,
detail?}``; lists are ``{total_count, next, previous, results}``. The explore API's dataset
export (``/api/explore/v2.1/catalog/datasets/{dataset_id}/exports/{format}``) streams the
records of published datasets (:mod:`bulkport.testing.ods_explore`).
"""

from __future__ import annotations

import copy
import re
import time
import unicodedata
from typing import Any

from aiohttp import web

from bulkport.testing import ods_apikeys as apikeys
from bulkport.testing import ods_explore as explore
from bulkport.testing import ods_files as files
from bulkport.testing import ods_openapi
from bulkport.testing.apputil import build_app
from bulkport.testing.faults import Faults
from bulkport.testing.ods_http import (
    ADMIN_USER,
    PREFIX,
    OdsError,
    auth_middleware,
    dataset_of,
    error_middleware,
    invalid,
    invalid_status,
    not_found,
    ods_error_body,
    paginate,
    read_json,
    route_label,
)
from bulkport.testing.ods_metadata import (
    REQUIRED,
    TEMPLATE_TYPES,
    Template,
    check_metadata,
    check_template,
    check_value,
)
from bulkport.testing.ods_store import (
    BUSY,
    OdsDataset,
    OdsStore,
    Publication,
    default_security,
    iso,
)
from bulkport.testing.responses import json_response

DEFAULT_API_KEY = "simulator-key"
DATASET_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")

__all__ = ["DEFAULT_API_KEY", "OdsStore", "create_ods_app"]


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


def _template(request: web.Request) -> Template:
    template = request.app["store"].templates.get(request.match_info["template"])
    if template is None:
        raise not_found()
    return template


async def get_metadata(request: web.Request) -> web.StreamResponse:
    return json_response(dataset_of(request).metadata)


async def put_metadata(request: web.Request) -> web.StreamResponse:
    store: OdsStore = request.app["store"]
    dataset = dataset_of(request)
    errors: dict[str, list[str]] = {}
    metadata = check_metadata(store.templates, await read_json(request), "", errors)
    if errors:
        raise invalid(errors)
    dataset.metadata = metadata  # a PUT replaces: omitted templates and fields go away
    dataset.touch()
    return json_response(dataset.metadata)


async def get_template_metadata(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    return json_response(dataset.metadata.get(_template(request).name, {}))


async def put_template_metadata(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    template = _template(request)
    errors: dict[str, list[str]] = {}
    values = check_template(template, await read_json(request), "", errors)
    if errors:
        raise invalid(errors)
    dataset.metadata[template.name] = values
    dataset.touch()
    return json_response(values)


def _field(request: web.Request) -> tuple[OdsDataset, Template, str]:
    dataset = dataset_of(request)
    template = _template(request)
    name = request.match_info["field"]
    if name not in template.fields:
        raise not_found()
    return dataset, template, name


async def get_field(request: web.Request) -> web.StreamResponse:
    dataset, template, name = _field(request)
    value = dataset.metadata.get(template.name, {}).get(name)
    if value is None:
        raise not_found()
    return json_response(value)


async def put_field(request: web.Request) -> web.StreamResponse:
    dataset, template, name = _field(request)
    stored, messages = check_value(template.fields[name], await read_json(request))
    if messages or stored is None:
        raise invalid({"value": messages})
    dataset.metadata.setdefault(template.name, {})[name] = stored
    dataset.touch()
    return json_response(stored)


async def delete_field(request: web.Request) -> web.StreamResponse:
    dataset, template, name = _field(request)
    values = dataset.metadata.get(template.name, {})
    if name not in values:
        raise not_found()
    if template.fields[name].required:
        raise invalid({name: [REQUIRED]})
    del values[name]
    dataset.touch()
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


async def list_templates(request: web.Request) -> web.StreamResponse:
    """``GET /metadata/templates/``, filtered by ``type`` and ``is_active`` if asked."""
    templates = list(request.app["store"].templates.values())
    wanted = request.query.get("type")
    if wanted is not None:
        if wanted not in TEMPLATE_TYPES:
            raise invalid({"type": [f"Select a valid choice. {wanted} is not one of the "
                                    f"available choices ({', '.join(TEMPLATE_TYPES)})."]})
        templates = [t for t in templates if t.type == wanted]
    active = request.query.get("is_active")
    if active is not None:
        if active.lower() not in ("true", "false"):
            raise invalid({"is_active": ["Must be a valid boolean."]})
        templates = [] if active.lower() == "false" else templates  # every one is active
    return json_response(paginate(request, [t.out() for t in templates]))


async def get_template(request: web.Request) -> web.StreamResponse:
    return json_response(_template(request).out())


async def list_template_fields(request: web.Request) -> web.StreamResponse:
    return json_response(paginate(request, [f.out() for f in _template(request).fields.values()]))


async def get_template_field(request: web.Request) -> web.StreamResponse:
    spec = _template(request).fields.get(request.match_info["field"])
    if spec is None:
        raise not_found()
    return json_response(spec.out())


# Paths in registration order: the fixed "files" segment must come before {resource_uid}.
ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("/datasets/", {"GET": list_datasets, "POST": create_dataset}),
    ("/datasets/{uid}/", {"GET": get_dataset, "PUT": update_dataset, "DELETE": delete_dataset}),
    ("/datasets/{uid}/publish/", {"POST": publish}),
    ("/datasets/{uid}/publish_metadata/", {"POST": publish_metadata}),
    ("/datasets/{uid}/unpublish/", {"POST": unpublish}),
    ("/datasets/{uid}/abort/", {"POST": abort}),
    ("/datasets/{uid}/status/", {"GET": get_status}),
    ("/datasets/{uid}/metadata/", {"GET": get_metadata, "PUT": put_metadata}),
    ("/datasets/{uid}/metadata/{template}/",
     {"GET": get_template_metadata, "PUT": put_template_metadata}),
    ("/datasets/{uid}/metadata/{template}/{field}/",
     {"GET": get_field, "PUT": put_field, "DELETE": delete_field}),
    ("/datasets/{uid}/resources/files/", {"POST": files.upload_file}),
    ("/datasets/{uid}/resources/files/{file_uid}/", {"GET": files.get_file}),
    ("/datasets/{uid}/resources/files/{file_uid}/download/", {"GET": files.download_file}),
    ("/datasets/{uid}/resources/", {"GET": files.list_resources, "POST": files.create_resource}),
    ("/datasets/{uid}/resources/{resource_uid}/",
     {"GET": files.get_resource, "PUT": files.update_resource,
      "DELETE": files.delete_resource}),
    ("/datasets/{uid}/attachments/",
     {"GET": files.list_attachments, "POST": files.create_attachment}),
    ("/datasets/{uid}/attachments/{attachment_uid}/",
     {"GET": files.get_attachment, "DELETE": files.delete_attachment}),
    ("/datasets/{uid}/attachments/{attachment_uid}/download/",
     {"GET": files.download_attachment}),
    ("/metadata/templates/", {"GET": list_templates}),
    ("/metadata/templates/{template}/", {"GET": get_template}),
    ("/metadata/templates/{template}/fields/", {"GET": list_template_fields}),
    ("/metadata/templates/{template}/fields/{field}/", {"GET": get_template_field}),
]


def create_ods_app(store: OdsStore | None = None, *, api_keys: set[str] | None = None,
                   faults: Faults | None = None, processing_time: float = 0.05,
                   custom_templates: dict[str, list[str]] | None = None) -> web.Application:
    """Build the Opendatasoft simulator.

    Args:
        store: the domain's content (a new empty one by default); ``app["store"]``.
        api_keys: accepted keys; default ``{"simulator-key"}``.
        faults: latency and errors to inject.
        processing_time: seconds a publication stays ``queued``/``processing``.
        custom_templates: extra metadata templates, name → field names, for a new store
            (a given ``store`` keeps its own templates).
    """
    if store is None:
        store = OdsStore(custom_templates=custom_templates)
    elif custom_templates:
        store.templates.update(OdsStore(custom_templates=custom_templates).templates)
    keys = set(api_keys) if api_keys is not None else {DEFAULT_API_KEY}
    store.apikeys.admins.add(ADMIN_USER)
    app = build_app(route_label, faults=faults, error_body=ods_error_body,
                    extra_middlewares=(error_middleware, auth_middleware(keys)), store=store,
                    stats=store.stats, processing_time=processing_time)
    routes = [(PREFIX + path, handlers) for path, handlers in [*ROUTES, *apikeys.ROUTES]]
    routes += [(explore.EXPLORE_PREFIX + path, handlers) for path, handlers in explore.ROUTES]
    for path, handlers in routes:
        resource = app.router.add_resource(path)
        for method, handler in handlers.items():
            resource.add_route(method, handler)
    ods_openapi.attach(app)  # the tests' OpenAPI oracle, when one is active
    return app
