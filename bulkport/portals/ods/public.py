"""Where an Opendatasoft domain shows a dataset and serves its files to a visitor.

- The dataset's page: ``{domain}/explore/dataset/{dataset_id}/`` (the links of
  Opendatasoft's own widgets, ``ods-widgets``). The portal shows published datasets only:
  until then a dataset is only in the back office, ``{domain}/backoffice/catalog/datasets/
  {dataset_id}/``, which people who may edit it open (visitors are sent to the login page);
  that is its page then.
- A resource's data: Opendatasoft turns every resource into records of the dataset, and a
  visitor downloads those from the Export tab, not the uploaded file (only a key that may
  edit the dataset reads that). The file's URL is the Explore API v2.1 export of the dataset
  in the file's format, ``{domain}/api/explore/v2.1/catalog/datasets/{dataset_id}/exports/
  {format}`` (what the Export tab links to, and the one export with no row cap), asked to
  look like the file: for a CSV, its separator, its headers (``use_labels``), no BOM. The
  records are not the file's bytes: a file with short rows comes back padded, for one.
- An attachment: the Information tab's link, ``{domain}/api/datasets/1.0/{dataset_id}/
  attachments/{attachment_id}/`` (Opendatasoft's user guide, "download_dataset_attachment"),
  where ``attachment_id`` is the Explore API's id of it (``cities1000_zip`` for
  ``cities1000.zip``), not the Automation API's ``uid``: it is read from the Explore API's
  list of the dataset's attachments.

Both file URLs serve bytes once the dataset is published. Until then the domain serves a
file's bytes only through the Automation API, to a key: those URLs are given instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from bulkport.http import HttpClient
from bulkport.portals.ods.api import API_PATH, parse_error

__all__ = ["EXPLORE_PATH", "PublicUrls", "attachment_lookup", "page_url"]

EXPLORE_PATH = "/api/explore/v2.1"
PAGE_PATH = "/explore/dataset/{dataset_id}/"  # a published dataset's page on the portal
BACKOFFICE_PATH = "/backoffice/catalog/datasets/{dataset_id}/"  # where editors open one

# Extractor type of a resource → the export in the same format as the file it was made of.
EXPORTS = {"csvfile": "csv", "xlsfile": "xlsx", "jsonfile": "json", "geojsonfile": "geojson",
           "kmlfile": "kml", "shapefile": "shp"}
DELIMITERS = (";", ",", "\t", "|")  # what a CSV export can be separated by
ODSFILE = "odsfile://"  # an attachment's URL inside the platform: the file's name follows


def page_url(site_url: str, dataset_id: str) -> str:
    """The public page of a dataset on the domain's portal (what its catalog links to)."""
    return site_url.rstrip("/") + PAGE_PATH.format(dataset_id=quote(dataset_id, safe=""))


def _metas(listed: dict[str, Any]) -> dict[str, Any]:
    metas = listed.get("metas")
    return metas if isinstance(metas, dict) else {}


def _attachment_id(listed: dict[str, Any]) -> str | None:
    """The Explore API's id of a listed attachment: ``metas.id``, else the last part of
    its ``href`` (the download URL the API states)."""
    metas = _metas(listed)
    value = metas.get("id")
    if isinstance(value, str) and value:
        return value
    href = listed.get("href")
    tail = urlsplit(href).path.rstrip("/").rsplit("/", 1)[-1] if isinstance(href, str) else ""
    return tail or None


def _file_name(listed: dict[str, Any]) -> str | None:
    """The name of a listed attachment's file: the one its platform URL gives, else its
    title."""
    metas = _metas(listed)
    url = metas.get("url")
    if isinstance(url, str) and url.startswith(ODSFILE):
        return url.removeprefix(ODSFILE)
    title = metas.get("title")
    return title if isinstance(title, str) else None


class PublicUrls:
    """The URLs one domain serves a dataset's page and files at."""

    def __init__(self, site_url: str, client: HttpClient) -> None:
        self.site = site_url.rstrip("/")
        self.client = client

    def page(self, dataset_id: str, *, published: bool = True) -> str:
        """The dataset's page on the portal once published, else in the back office."""
        if published:
            return page_url(self.site, dataset_id)
        return self.site + BACKOFFICE_PATH.format(dataset_id=quote(dataset_id, safe=""))

    def export(self, dataset_id: str, extractor: str, separator: str = ",") -> str:
        """The export of the dataset's records in the format of a resource's file (CSV when
        the extractor has no export of its own), shaped like that file where the export
        can be: columns headed by their labels (the file's own headers) and, for CSV, the
        file's separator and no byte order mark."""
        fmt = EXPORTS.get(extractor, "csv")
        query = {"csv": {"delimiter": separator if separator in DELIMITERS else ",",
                         "with_bom": "false", "use_labels": "true"},
                 "xlsx": {"use_labels": "true"}}.get(fmt)
        return (f"{self.site}{EXPLORE_PATH}/catalog/datasets/{quote(dataset_id, safe='')}"
                f"/exports/{fmt}" + (f"?{urlencode(query)}" if query else ""))

    def attachment(self, dataset_id: str, attachment_id: str) -> str:
        return (f"{self.site}/api/datasets/1.0/{quote(dataset_id, safe='')}/attachments/"
                f"{quote(attachment_id, safe='')}/")

    def resource_file(self, uid: str, file_uid: str) -> str:
        """Where the Automation API serves an uploaded resource file (to a key only)."""
        return (f"{self.site}{API_PATH}/datasets/{quote(uid, safe='')}/resources/files/"
                f"{quote(file_uid, safe='')}/download/")

    def attachment_file(self, uid: str, attachment_uid: str) -> str:
        """Where the Automation API serves an attachment (to a key only)."""
        return (f"{self.site}{API_PATH}/datasets/{quote(uid, safe='')}/attachments/"
                f"{quote(attachment_uid, safe='')}/download/")

    async def list_attachments(self, dataset_id: str) -> list[dict[str, Any]]:
        """The Explore API's list of a published dataset's attachments, as it gives them.

        Raises:
            BulkportError: the list could not be read (e.g. NotFound: not published).
        """
        url = f"{self.site}{EXPLORE_PATH}/catalog/datasets/{quote(dataset_id, safe='')}/attachments"
        response = await self.client.request("GET", url, errors=parse_error)
        body = response.json()
        listed = body.get("attachments") if isinstance(body, dict) else None
        return [a for a in listed or [] if isinstance(a, dict)]

    async def attachment_ids(self, dataset_id: str) -> Callable[[str, int], str | None]:
        """The Explore API's ids of a published dataset's attachments, as a lookup (see
        :func:`attachment_lookup`).

        Raises:
            BulkportError: the list could not be read (e.g. NotFound: not published).
        """
        return attachment_lookup(await self.list_attachments(dataset_id))


def attachment_lookup(listed: list[dict[str, Any]]) -> Callable[[str, int], str | None]:
    """The Explore API's ids of the attachments it ``listed``, as a lookup: the file name
    and n (the n-th attachment of that name, from 0) → its id, or None."""
    def lookup(filename: str, n: int) -> str | None:
        named = [a for a in listed if _file_name(a) == filename]
        return _attachment_id(named[n]) if n < len(named) else None

    return lookup
