"""Metadata handlers of the Opendatasoft simulator: a dataset's values by template and by
field, and the metadata templates the domain offers."""

from __future__ import annotations

from aiohttp import web

from bulkport.testing.core.responses import json_response
from bulkport.testing.ods.errors import invalid, not_found
from bulkport.testing.ods.http import dataset_of, paginate, read_json
from bulkport.testing.ods.metadata import (
    REQUIRED,
    TEMPLATE_TYPES,
    Template,
    check_metadata,
    check_template,
    check_value,
)
from bulkport.testing.ods.store import OdsDataset, OdsStore


def _template(request: web.Request) -> Template:
    store: OdsStore = request.app["store"]
    template = store.templates.get(request.match_info["template"])
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
