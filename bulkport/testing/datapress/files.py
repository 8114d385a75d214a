"""DataPress simulator: file uploads (chunked, and the v4 single request) and downloads.

A chunked upload is ``POST {prefix}/dataset/{id}/upload`` → ``{urlChunk, urlComplete}``;
each part is a multipart ``file`` with its number in the form field ``part`` (the
official client) or ``chunk`` (the docs), sent with the same key; ``urlComplete`` joins
the parts into one file. Every body is streamed to disk, never held whole.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from bulkport.testing.core.responses import base_url, json_response, stream_blob
from bulkport.testing.datapress.errors import DataPressError, forbidden, invalid, not_found
from bulkport.testing.datapress.http import current_user, dataset_for, read_json, render_dataset
from bulkport.testing.datapress.schema import MISSING, Checker, Issue, file_format, invalid_type
from bulkport.testing.datapress.store import DataPressStore, UploadSession, iso

PART_SIZE = 5 * 1024 * 1024  # the official client's chunk size
MAX_PARTS = 10_000  # an S3 multipart upload's ceiling
_FORM_CHUNK = 64 * 1024


def _bound(issues: list[Issue], path: list[str | int], value: int, low: int,
           high: int) -> None:
    if value < low:
        issues.append({"code": "too_small", "minimum": low, "type": "number",
                       "inclusive": True, "exact": False, "path": path,
                       "message": f"Number must be greater than or equal to {low}"})
    elif value > high:
        issues.append({"code": "too_big", "maximum": high, "type": "number",
                       "inclusive": True, "exact": False, "path": path,
                       "message": f"Number must be less than or equal to {high}"})


def _upload_fields(body: Any) -> dict[str, Any]:
    """The checked body of ``POST .../upload``."""
    if not isinstance(body, dict):
        raise invalid([invalid_type([], "object", body)])
    check = Checker()
    fields: dict[str, Any] = {"filename": check.string(body, "filename", [], nonempty=True),
                              "parts": check.integer(body, "parts", [], MISSING)}
    if isinstance(fields["parts"], int):
        _bound(check.issues, ["parts"], fields["parts"], 0, MAX_PARTS)
    for key in ("resource_id", "title", "description"):
        if body.get(key) is not None:
            fields[key] = check.string(body, key, [])
    if body.get("order") is not None:
        fields["order"] = check.integer(body, "order", [], 0)
    if body.get("timeframe") is not None:
        frame = check.obj(body, "timeframe", [])
        if frame is not None:
            fields["timeframe"] = {"from": check.string(frame, "from", ["timeframe"]),
                                   "to": check.string(frame, "to", ["timeframe"])}
    if check.issues:
        raise invalid(check.issues)
    return fields


async def start_upload(request: web.Request) -> web.StreamResponse:
    """``POST {prefix}/dataset/{id}/upload``: open an upload, answer its two URLs."""
    store: DataPressStore = request.app["store"]
    dataset, user = dataset_for(request, edit=True)
    assert user is not None
    fields = _upload_fields(await read_json(request))
    resource_id = fields.pop("resource_id", None)
    if resource_id is not None and resource_id not in dataset["resources"]:
        raise not_found(f"Resource not found: {resource_id}")
    session = UploadSession(uuid=store.new_uuid(), dataset_id=dataset["id"], user_id=user.id,
                            filename=fields.pop("filename"), parts=fields.pop("parts"),
                            fields={**fields, "resource_id": resource_id})
    store.uploads[session.uuid] = session
    where = f"{base_url(request)}{request.app['prefix']}/upload/{session.uuid}"
    return json_response({"urlChunk": f"{where}/chunk", "urlComplete": f"{where}/complete"})


def _session(request: web.Request) -> UploadSession:
    store: DataPressStore = request.app["store"]
    session = store.uploads.get(request.match_info["uuid"])
    if session is None:
        raise not_found("Upload not found: it does not exist or is already complete.")
    user = current_user(request)
    if user is None or user.id != session.user_id:
        raise forbidden("This upload belongs to another API key.")
    return session


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(_FORM_CHUNK):
        yield chunk


def _part_number(text: str | None, session: UploadSession, issues: list[Issue]) -> int | None:
    if text is None:
        issues.append(invalid_type(["part"], "number", MISSING))
        return None
    try:
        number = int(text.strip())
    except ValueError:
        issues.append(invalid_type(["part"], "number", text))
        return None
    _bound(issues, ["part"], number, 0, session.parts - 1)
    return number


async def upload_chunk(request: web.Request) -> web.StreamResponse:
    """``urlChunk``: store one part (a part sent again replaces the first copy)."""
    store: DataPressStore = request.app["store"]
    session = _session(request)
    if request.content_type != "multipart/form-data":
        raise invalid([invalid_type(["file"], "object", MISSING)])
    number_text: str | None = None
    temp: str | None = None
    reader = await request.multipart()
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file" and temp is None:
                # The part number may come after the bytes: keep them aside until then.
                temp = f"upload:{session.uuid}:{store.new_uuid()}"
                await store.blobs.write(temp, _part_chunks(part))
            elif part.name in ("part", "chunk") and number_text is None:
                number_text = await part.text()
        issues: list[Issue] = []
        number = _part_number(number_text, session, issues)
        blob = store.blobs.get(temp) if temp else None
        if blob is None:
            issues.append(invalid_type(["file"], "object", MISSING))
        elif number is not None and number < session.parts - 1 and (
                blob.size < request.app["min_part_size"]):
            issues.append({"code": "custom", "path": ["file"], "message":
                           f"Part {number} has {blob.size} bytes: every part but the last "
                           f"must have at least {request.app['min_part_size']}"})
        if issues:
            raise invalid(issues)
    except BaseException:
        if temp is not None:
            store.blobs.delete(temp)
        raise
    assert number is not None and blob is not None and temp is not None
    key = f"upload:{session.uuid}:part:{number}"
    store.blobs.rename(temp, key)
    session.received[number] = key
    return json_response({"part": number, "size": blob.size})


async def _joined(store: DataPressStore, keys: list[str]) -> AsyncIterator[bytes]:
    for key in keys:
        blob = store.blobs.get(key)
        assert blob is not None
        for chunk in blob.iter_chunks():
            yield chunk


async def _hashed(chunks: AsyncIterator[bytes], md5: Any) -> AsyncIterator[bytes]:
    """``chunks`` unchanged, fed to ``md5`` on the way (DataPress's ``hash`` is an MD5)."""
    async for chunk in chunks:
        md5.update(chunk)
        yield chunk


def _make_room(resources: dict[str, Any], order: int, moving: str) -> None:
    """Shift the files at ``order`` and below down one place, as an insert does."""
    if any(res["order"] == order for rid, res in resources.items() if rid != moving):
        for rid, res in resources.items():
            if rid != moving and res["order"] >= order:
                res["order"] += 1


def attach_file(store: DataPressStore, dataset: dict[str, Any], origin: str, filename: str,
                digest: str, fields: dict[str, Any]) -> str:
    """Make the stored ``origin`` a file resource of ``dataset``; return the resource id.

    A new file goes to ``order`` (default 0, the top of the list); ``resource_id``
    replaces that resource's file in place, keeping what ``fields`` does not change.
    """
    resources = dataset["resources"]
    resource_id = fields.get("resource_id") or store.new_item_id(resources)
    previous = resources.get(resource_id, {})
    order = fields.get("order", previous.get("order", 0))
    if not previous or order != previous.get("order"):
        _make_room(resources, order, resource_id)
    timeframe = fields.get("timeframe", previous.get("timeframe"))
    blob = store.blobs.get(origin)
    assert blob is not None
    resources[resource_id] = {
        "title": fields.get("title", previous.get("title", filename)),
        "description": fields.get("description", previous.get("description", "")),
        "timeframe": timeframe, "order": order, "origin": origin,
        "format": file_format(filename), "hash": digest, "size": blob.size}
    store.remember_md5(origin, digest)
    if previous.get("origin"):
        store.drop_file(previous["origin"])
    # Unlike a PATCH, an upload moves updatedAt to now, as the upload docs say.
    dataset["updatedAt"] = iso()
    return resource_id


async def complete_upload(request: web.Request) -> web.StreamResponse:
    """``urlComplete``: join the parts into the file; answer ``{dataset, resource_id,
    new_key}``."""
    store: DataPressStore = request.app["store"]
    session = _session(request)
    dataset, _ = dataset_for(request, edit=True, dataset_id=session.dataset_id)
    missing = [n for n in range(session.parts) if n not in session.received]
    if missing:
        listed = ", ".join(map(str, missing))
        raise DataPressError(
            400, "Upload is incomplete.",
            f"Upload is incomplete: {len(session.received)} of {session.parts} parts "
            f"received, missing part(s) {listed}.",
            [{"code": "custom", "path": ["parts"], "missing": missing,
              "message": f"Missing part(s): {listed}"}])
    resource_id = session.fields.get("resource_id")
    if resource_id is not None and resource_id not in dataset["resources"]:
        raise not_found(f"Resource not found: {resource_id}")
    del store.uploads[session.uuid]  # before any await: a second complete finds nothing
    keys = [session.received[n] for n in range(session.parts)]
    origin = f"{store.site}/dataset/{dataset['id']}/{session.uuid}/{session.filename}"
    md5 = hashlib.md5()
    await store.blobs.write(origin, _hashed(_joined(store, keys), md5))
    for key in keys:
        store.blobs.delete(key)
    resource_id = attach_file(store, dataset, origin, session.filename, md5.hexdigest(),
                              session.fields)
    return json_response({"dataset": render_dataset(store, dataset, base_url(request)),
                          "resource_id": resource_id, "new_key": origin})


async def upload_resource(request: web.Request) -> web.StreamResponse:
    """v4 ``POST /api/dataset/{id}/resources[/{resource_id}]``: the file in one request.

    Multipart ``file`` and an optional ``title``; answers the dataset JSON.
    """
    store: DataPressStore = request.app["store"]
    dataset, _ = dataset_for(request, edit=True)
    resource_id = request.match_info.get("resource_id")
    if resource_id is not None and resource_id not in dataset["resources"]:
        raise not_found(f"Resource not found: {resource_id}")
    if request.content_type != "multipart/form-data":
        raise invalid([invalid_type(["file"], "object", MISSING)])
    fields: dict[str, Any] = {"resource_id": resource_id}
    origin = filename = digest = None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file" and origin is None:
            filename = part.filename or "file"
            origin = f"{store.site}/dataset/{dataset['id']}/{store.new_uuid()}/{filename}"
            md5 = hashlib.md5()
            await store.blobs.write(origin, _hashed(_part_chunks(part), md5))
            digest = md5.hexdigest()
        elif part.name == "title":
            fields["title"] = await part.text()
    if origin is None or filename is None or digest is None:
        raise invalid([invalid_type(["file"], "object", MISSING)])
    attach_file(store, dataset, origin, filename, digest, fields)
    return json_response(render_dataset(store, dataset, base_url(request)))


async def download(request: web.Request) -> web.StreamResponse:
    """``GET /download/{id}/{resource_id}/{filename}``: a hosted file, streamed.

    The same key as the API: a private dataset's files need read permission.
    """
    store: DataPressStore = request.app["store"]
    dataset, _ = dataset_for(request, edit=False)
    resource = dataset["resources"].get(request.match_info["resource_id"])
    origin = resource.get("origin") if resource else None
    blob = store.blobs.get(origin) if origin else None
    if origin is None or blob is None:
        raise not_found("File not found.")
    filename = origin.rsplit("/", 1)[-1]
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_")
    disposition = f'attachment; filename="{ascii_name}"; filename*=UTF-8\'\'{quote(filename)}'
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return await stream_blob(request, blob, content_type=content_type,
                             headers={"Content-Disposition": disposition})
