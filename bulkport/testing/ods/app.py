"""Opendatasoft Automation API v1.0 simulator over an in-memory store.

Everything lives under ``/api/automation/v1.0/`` and every path ends with ``/``. Auth is
``Authorization: apikey KEY`` or ``?apikey=KEY``; errors are ``{error_code, message,
detail?}``; lists are ``{total_count, next, previous, results}``. The explore API's dataset
export (``/api/explore/v2.1/catalog/datasets/{dataset_id}/exports/{format}``) streams the
records of published datasets (:mod:`bulkport.testing.ods.explore`); their pages and
attachments are served to visitors too (:mod:`bulkport.testing.ods.portal`).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from bulkport.testing.core.app import build_app
from bulkport.testing.core.faults import Faults
from bulkport.testing.ods import apikeys, datasets, explore, files, openapi, portal, templates
from bulkport.testing.ods.errors import error_middleware, ods_error_body
from bulkport.testing.ods.http import ADMIN_USER, PREFIX, auth_middleware, route_label
from bulkport.testing.ods.store import OdsStore

DEFAULT_API_KEY = "simulator-key"

__all__ = ["DEFAULT_API_KEY", "create_ods_app"]


# Paths in registration order: the fixed "files" segment must come before {resource_uid}.
ROUTES: list[tuple[str, dict[str, Handler]]] = [
    ("/datasets/", {"GET": datasets.list_datasets, "POST": datasets.create_dataset}),
    ("/datasets/{uid}/", {"GET": datasets.get_dataset, "PUT": datasets.update_dataset,
                          "DELETE": datasets.delete_dataset}),
    ("/datasets/{uid}/publish/", {"POST": datasets.publish}),
    ("/datasets/{uid}/publish_metadata/", {"POST": datasets.publish_metadata}),
    ("/datasets/{uid}/unpublish/", {"POST": datasets.unpublish}),
    ("/datasets/{uid}/abort/", {"POST": datasets.abort}),
    ("/datasets/{uid}/status/", {"GET": datasets.get_status}),
    ("/datasets/{uid}/metadata/", {"GET": templates.get_metadata, "PUT": templates.put_metadata}),
    ("/datasets/{uid}/metadata/{template}/",
     {"GET": templates.get_template_metadata, "PUT": templates.put_template_metadata}),
    ("/datasets/{uid}/metadata/{template}/{field}/",
     {"GET": templates.get_field, "PUT": templates.put_field,
      "DELETE": templates.delete_field}),
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
    ("/metadata/templates/", {"GET": templates.list_templates}),
    ("/metadata/templates/{template}/", {"GET": templates.get_template}),
    ("/metadata/templates/{template}/fields/", {"GET": templates.list_template_fields}),
    ("/metadata/templates/{template}/fields/{field}/", {"GET": templates.get_template_field}),
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
    elif custom_templates:  # only the custom ones: the store's own (licences...) stay
        made = OdsStore(custom_templates=custom_templates).templates
        store.templates.update({name: made[name] for name in custom_templates})
    keys = set(api_keys) if api_keys is not None else {DEFAULT_API_KEY}
    store.apikeys.admins.add(ADMIN_USER)
    app = build_app(route_label, faults=faults, error_body=ods_error_body,
                    extra_middlewares=(error_middleware, auth_middleware(keys)), store=store,
                    stats=store.stats, processing_time=processing_time)
    routes = [(PREFIX + path, handlers) for path, handlers in [*ROUTES, *apikeys.ROUTES]]
    routes += [(explore.EXPLORE_PREFIX + path, handlers) for path, handlers in explore.ROUTES]
    routes += portal.ROUTES  # what a visitor reaches: pages, attachments
    for path, handlers in routes:
        resource = app.router.add_resource(path)
        for method, handler in handlers.items():
            resource.add_route(method, handler)
    openapi.attach(app)  # the tests' OpenAPI oracle, when one is active
    return app
