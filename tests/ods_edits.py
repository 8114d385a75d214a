"""Changes made to an Opendatasoft domain the way a person makes them: through the
Automation API of the simulator, so that the simulator's own bookkeeping (``updated_at``)
is what the tests rely on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from bulkport.http import HttpClient, Upload
from bulkport.portals.ods.api import API_PATH, parse_error


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    yield body


class ByHand:
    """One domain's Automation API, for a test's edits (async; wrap in ``anyio.run``)."""

    def __init__(self, url: str, key: str) -> None:
        self.api = url + API_PATH
        self.url, self.key = url, key

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with HttpClient() as client:
            client.bind(self.url, {"Authorization": f"apikey {self.key}"})
            response = await client.request(method, self.api + path, errors=parse_error,
                                            **kwargs)
            return response.json() if response.body else None

    async def upload(self, path: str, filename: str, body: bytes) -> Any:
        async with HttpClient() as client:
            client.bind(self.url, {"Authorization": f"apikey {self.key}"})
            response = await client.upload("POST", self.api + path, Upload(
                "file", filename, _chunks(body), size=len(body)), errors=parse_error)
            return response.json()

    async def set_field(self, uid: str, template: str, name: str, value: Any) -> None:
        """Change one metadata field (the template is read, changed and put back whole)."""
        values = await self.call("GET", f"/datasets/{uid}/metadata/{template}/")
        values[name] = {"value": value}
        await self.call("PUT", f"/datasets/{uid}/metadata/{template}/", json=values)

    async def replace_file(self, uid: str, body: bytes) -> str:
        """New bytes for the dataset's first uploaded file (same name); return the
        resource's uid."""
        listed = await self.call("GET", f"/datasets/{uid}/resources/", params={"limit": 100})
        resource = next(r for r in listed["results"]
                        if r["datasource"]["type"] == "uploaded_file")
        file = await self.upload(f"/datasets/{uid}/resources/files/",
                                 resource["display_name"], body)
        await self.call("PUT", f"/datasets/{uid}/resources/{resource['uid']}/", json={
            "type": resource["type"], "title": resource["title"], "params": resource["params"],
            "datasource": {"type": "uploaded_file", "file": {"uid": file["uid"]}}})
        return str(resource["uid"])

    async def delete(self, uid: str) -> None:
        await self.call("DELETE", f"/datasets/{uid}/")

    async def add(self, dataset_id: str, title: str, publisher: str,
                  mark: tuple[str, str, str] | None = None) -> str:
        """A new dataset with one remote (HTTP) resource; return its uid.

        Args:
            mark: (template, field, value) to fill in too.
        """
        metadata: dict[str, Any] = {"default": {
            "title": {"value": title}, "modified": {"value": "2024-06-01T00:00:00Z"},
            "language": {"value": "en"}, "publisher": {"value": publisher}}}
        if mark is not None:
            metadata[mark[0]] = {mark[1]: {"value": mark[2]}}
        made = await self.call("POST", "/datasets/", json={"dataset_id": dataset_id,
                                                           "metadata": metadata})
        await self.call("POST", f"/datasets/{made['uid']}/resources/", json={
            "type": "csvfile", "title": f"{title} feed", "params": {},
            "datasource": {"type": "http", "relative_url": f"/{dataset_id}.csv",
                           "connection": {"type": "http", "url": "https://feeds.example.org"}}})
        return str(made["uid"])

    async def get(self, uid: str) -> Any:
        return await self.call("GET", f"/datasets/{uid}/")
