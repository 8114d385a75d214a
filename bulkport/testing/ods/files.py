"""Opendatasoft simulator: uploaded resource files, attachments and resources."""

from __future__ import annotations

import functools
import mimetypes
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import content_disposition_filename, parse_content_disposition
from aiohttp.web_protocol import RequestPayloadError

from bulkport.testing.core.responses import json_response, stream_blob
from bulkport.testing.ods.errors import invalid, not_found
from bulkport.testing.ods.http import dataset_of, paginate, read_json
from bulkport.testing.ods.store import FileRecord, OdsDataset, OdsStore, iso

EXTRACTORS = {"csvfile": "CSV File", "xlsfile": "Spreadsheet File", "jsonfile": "JSON File",
              "geojsonfile": "GeoJSON File", "kmlfile": "KML File", "shapefile": "Shapefile",
              "gpxfile": "GPX File", "xmlfile": "XML File", "mapinfofile": "MapInfo File"}
DATASOURCES = {"http": "HTTP", "uploaded_file": "Uploaded file", "ftp": "FTP",
               "sharepoint": "SharePoint", "google_drive": "Google Drive",
               "federated": "Federated dataset", "amazon_s3": "Amazon S3",
               "azure_blob_storage": "Azure Blob Storage"}


# aiohttp's parser rebuilds a table of 128 escaped characters on every call, which costs
# more than the rest of an upload; headers repeat (same field, common file names).
_disposition = functools.lru_cache(maxsize=1024)(parse_content_disposition)


def _bad_multipart(problem: str) -> Exception:
    # The rest of the body is left unread: the connection closes after the reply.
    return invalid({"file": [f"Multipart form parse error - {problem}"]}, close=True)


async def _receive_file(request: web.Request, prefix: str) -> FileRecord:
    """Stream the multipart ``file`` field into the blob store; a body that is no valid
    multipart form (no boundary, garbage, cut before its closing boundary) is a 400."""
    store: OdsStore = request.app["store"]
    # Not request.content_type: aiohttp parses it with the email package, which costs more
    # than the rest of the upload, and a boundary unique to each request defeats its cache.
    media_type = request.headers.get(hdrs.CONTENT_TYPE, "").partition(";")[0]
    if media_type.strip().lower() != "multipart/form-data":
        raise invalid({"file": ["No file was submitted."]})
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            # One parse for both parameters (part.name and part.filename parse it each).
            _, params = _disposition(part.headers.get(hdrs.CONTENT_DISPOSITION))
            if content_disposition_filename(params, "name") != "file":
                continue
            filename = content_disposition_filename(params, "filename") or "file"
            uid = store.new_uid(prefix)

            async def chunks(part: BodyPartReader = part) -> AsyncIterator[bytes]:
                while chunk := await part.read_chunk(65536):
                    yield chunk

            blob = await store.blobs.write(uid, chunks())  # removes what it wrote if cut
            if not part.at_eof():  # the body ended inside the file: it is not all there
                store.blobs.delete(uid)
                raise _bad_multipart("the body ends before the closing boundary")
            declared = part.headers.get("Content-Type")
            mimetype = mimetypes.guess_type(filename)[0] or (
                declared if declared and declared != "application/octet-stream" else None)
            return FileRecord(uid, filename, mimetype, iso(), blob.size)
    # aiohttp's multipart parser (bad or missing boundary, a part header that is no header)
    # and its body decoding (a Content-Encoding the bytes do not follow).
    except (ValueError, HttpProcessingError, RequestPayloadError) as error:
        raise _bad_multipart(str(error).strip() or type(error).__name__) from None
    raise invalid({"file": ["No file was submitted."]})


async def upload_file(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    record = await _receive_file(request, "fi_")
    dataset.files[record.uid] = record
    return json_response(record.out())  # 200, not 201, as documented


def _file(records: dict[str, FileRecord], uid: str) -> FileRecord:
    record = records.get(uid)
    if record is None:
        raise not_found()
    return record


async def get_file(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    return json_response(_file(dataset.files, request.match_info["file_uid"]).out())


async def _download(request: web.Request, record: FileRecord) -> web.StreamResponse:
    blob = request.app["store"].blobs.get(record.uid)
    if blob is None:
        raise not_found()
    ascii_name = record.filename.encode("ascii", "replace").decode().replace('"', "_")
    disposition = (f'attachment; filename="{ascii_name}"; '
                   f"filename*=UTF-8''{quote(record.filename)}")
    return await stream_blob(request, blob, content_type="application/octet-stream",
                             headers={"Content-Disposition": disposition})


async def download_file(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    return await _download(request, _file(dataset.files,
                                          request.match_info["file_uid"]))


async def list_attachments(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    return json_response(paginate(request, [a.out() for a in dataset.attachments.values()]))


async def create_attachment(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    record = await _receive_file(request, "at_")
    dataset.add_attachment(record)
    dataset.touch()
    return json_response(record.out(), 201)


async def get_attachment(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    uid = request.match_info["attachment_uid"]
    return json_response(_file(dataset.attachments, uid).out())


async def delete_attachment(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    record = _file(dataset.attachments, request.match_info["attachment_uid"])
    del dataset.attachments[record.uid]
    request.app["store"].blobs.delete(record.uid)
    dataset.touch()
    return web.Response(status=204)


async def download_attachment(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    uid = request.match_info["attachment_uid"]
    return await _download(request, _file(dataset.attachments, uid))


# Datasource type → the fields the document requires besides ``type``.
_DATASOURCE_FIELDS = {"http": ("connection",), "ftp": ("connection",),
                      "sharepoint": ("file_id", "drive_id", "connection"),
                      "google_drive": ("file_id", "connection"),
                      "amazon_s3": ("connection",), "azure_blob_storage": ("connection",),
                      "federated": ("domain", "dataset", "impersonate_permissions"),
                      "uploaded_file": ("file",)}


def _connection_problem(kind: str, connection: Any) -> str | None:
    """Why ``connection`` is neither ``{"uid"}`` (a saved connection) nor an inline one of
    the datasource's type (``{"type", "url", ...}``), or None."""
    if not isinstance(connection, dict):
        return 'Expected {"uid": ...} or a connection object.'
    if set(connection) == {"uid"}:
        return None if isinstance(connection["uid"], str) and connection["uid"] else (
            '"uid" must be a non-empty string.')
    if connection.get("type") != kind:
        return f'An inline connection needs "type": "{kind}".'
    url = connection.get("url")
    if kind in ("http", "ftp") and not (isinstance(url, str) and url):
        return '"url": This field is required.'
    return None


def _datasource(dataset: OdsDataset, source: Any, errors: dict[str, list[str]]
                ) -> tuple[dict[str, Any], str]:
    """The stored datasource and the resource's display name."""
    if not isinstance(source, dict):
        errors["datasource"] = ["This field is required."]
        return {}, ""
    kind = source.get("type")
    if not isinstance(kind, str) or kind not in DATASOURCES:
        errors["datasource.type"] = [f'"{kind}" is not a valid choice.']
        return {}, ""
    missing = [name for name in _DATASOURCE_FIELDS[kind] if name not in source]
    for name in missing:
        errors[f"datasource.{name}"] = ["This field is required."]
    for name in ("relative_url", "file_id", "drive_id", "url"):
        if name in source and not isinstance(source[name], str):
            errors[f"datasource.{name}"] = ["Not a valid string."]
    if "connection" in source:
        problem = _connection_problem(kind, source["connection"])
        if problem:
            errors["datasource.connection"] = [problem]
    if missing or any(key.startswith("datasource.") for key in errors):
        return {}, ""
    if kind == "uploaded_file":
        file = source.get("file")
        uid = file.get("uid") if isinstance(file, dict) else None
        if not isinstance(uid, str) or not uid:
            errors["datasource.file"] = ['Expected {"uid": the uid of an uploaded file}.']
            return {}, ""
        record = dataset.files.get(uid)
        if record is None:
            errors["datasource.file.uid"] = [f'File "{uid}" does not exist in this dataset.']
            return {}, ""
        return {"type": kind, "file": {"uid": uid}}, record.filename
    if kind == "http":
        connection = source["connection"]
        display = f"{connection.get('url') or ''}{source.get('relative_url') or ''}"
        return dict(source), display or str(connection.get("uid"))
    return dict(source), DATASOURCES[kind]


def _build_resource(store: OdsStore, dataset: OdsDataset, body: dict[str, Any],
                    uid: str | None) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    kind = body.get("type")
    if not kind:
        errors["type"] = ["This field is required."]
    elif not isinstance(kind, str) or kind not in EXTRACTORS:
        errors["type"] = [f'"{kind}" is not a valid choice.']
    title = body.get("title")
    if not isinstance(title, str) or not title.strip():
        errors["title"] = ["This field is required." if title is None
                           else "Not a valid string." if not isinstance(title, str)
                           else "This field may not be blank."]
    params = body.get("params", {})
    if not isinstance(params, dict):
        errors["params"] = ['Expected a dictionary of items but got type '
                            f'"{type(params).__name__}".']
    source, display = _datasource(dataset, body.get("datasource"), errors)
    if errors:
        raise invalid(errors)
    origin = source["type"]
    return {"uid": uid or store.new_uid("re_", dataset.resources), "type": kind,
            "title": title, "display_name": display or title,
            "extraction_infos": {"label": EXTRACTORS[str(kind)], "type": kind},
            "origin": {"label": DATASOURCES[origin], "type": origin}, "params": params,
            "datasource": source, "updated_at": iso()}


async def list_resources(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    return json_response(paginate(request, list(dataset.resources.values())))


async def create_resource(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    resource = _build_resource(request.app["store"], dataset, await read_json(request), None)
    dataset.resources[resource["uid"]] = resource
    dataset.touch()
    return json_response(resource, 201)


def _resource(dataset: OdsDataset, request: web.Request) -> dict[str, Any]:
    resource = dataset.resources.get(request.match_info["resource_uid"])
    if resource is None:
        raise not_found()
    return resource


async def get_resource(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    return json_response(_resource(dataset, request))


async def update_resource(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    uid = _resource(dataset, request)["uid"]
    resource = _build_resource(request.app["store"], dataset, await read_json(request), uid)
    dataset.resources[uid] = resource
    dataset.touch()
    return json_response(resource)


async def delete_resource(request: web.Request) -> web.StreamResponse:
    dataset = dataset_of(request)
    del dataset.resources[_resource(dataset, request)["uid"]]
    dataset.touch()
    return web.Response(status=204)
