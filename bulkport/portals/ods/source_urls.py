"""Where a visitor of an Opendatasoft domain found each dataset and file the source read:
the old URLs of a redirect map, in the forms :mod:`bulkport.portals.ods.public` builds.

They depend on what the pivot does not hold: whether the dataset is published, each
resource's extractor and separator, the Explore API's id of each attachment. So they are
worked out from the raw record when it is mapped, and kept beside the pivot dataset for as
long as that lives (a weak reference): memory follows the datasets in flight, never the
catalog.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bulkport.model import Dataset, Resource, object_at, text
from bulkport.portals.ods.mapping_read import (
    OdsReadOptions,
    attachment_file_url,
    resource_file_url,
)
from bulkport.portals.ods.public import PublicUrls, attachment_lookup

# Raw record: the Explore API's list of the dataset's attachments, where the source read it.
EXPLORE_ATTACHMENTS = "explore_attachments"


@dataclass(frozen=True)
class Visible:
    """Where a visitor finds one dataset and its hosted files."""

    page: str
    files: dict[str, str] = field(default_factory=dict)  # URL read from → a visitor's URL


def _items(raw: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = raw.get(key)
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def visible(raw: Mapping[str, Any], public: PublicUrls, read: OdsReadOptions) -> Visible:
    """The visitor's URLs of a raw record (as :meth:`OdsSource.details` gives it).

    Published, a tabular resource is the export of the dataset's records in the format of
    its file, and an attachment its Information tab link (when the Explore API listed it).
    Unpublished, nothing is public: the page is the back office's and each file stays
    where the Automation API serves it, to a key.
    """
    dataset = object_at(raw, "dataset")
    uid, dataset_id = text(dataset.get("uid")) or "", text(dataset.get("dataset_id")) or ""
    published = bool(dataset.get("is_published"))
    shown = Visible(public.page(dataset_id, published=published))
    if not published:
        return shown
    for res in _items(raw, "resources"):
        source = object_at(res, "datasource")
        file_uid = text(object_at(source, "file").get("uid"))
        if source.get("type") == "uploaded_file" and file_uid:
            separator = object_at(res, "params").get("separator")
            shown.files[resource_file_url(read, uid, file_uid)] = public.export(
                dataset_id, str(res.get("type")), separator if isinstance(separator, str) else ",")
    listed = raw.get(EXPLORE_ATTACHMENTS)
    if isinstance(listed, list):
        lookup = attachment_lookup([a for a in listed if isinstance(a, dict)])
        seen: Counter[str] = Counter()
        for att in _items(raw, "attachments"):
            att_uid = text(att.get("uid")) or ""
            name = text(att.get("filename")) or att_uid
            public_id = lookup(name, seen[name])
            seen[name] += 1
            if public_id:
                shown.files[attachment_file_url(read, uid, att_uid)] = public.attachment(
                    dataset_id, public_id)
    return shown


class SourceUrls:
    """The visitor's URLs of the datasets a source mapped and still holds."""

    def __init__(self, public: PublicUrls, read: OdsReadOptions) -> None:
        self.public = public
        self.read = read
        self._kept: dict[int, Visible] = {}  # id of a live pivot dataset → its URLs

    def keep(self, ds: Dataset, raw: Mapping[str, Any]) -> None:
        """Remember the URLs of ``raw`` for ``ds``, its pivot, until ``ds`` is gone."""
        key = id(ds)
        self._kept[key] = visible(raw, self.public, self.read)
        weakref.finalize(ds, self._kept.pop, key, None)

    def __len__(self) -> int:
        """How many datasets' URLs are held: the pivots alive, never the catalog."""
        return len(self._kept)

    def page(self, ds: Dataset) -> str:
        """The dataset's page; of a dataset this source did not map, its portal page."""
        shown = self._kept.get(id(ds))
        return shown.page if shown is not None else self.public.page(ds.name)

    def file(self, ds: Dataset, resource: Resource) -> str:
        """The file's public URL; where it is read when it has none (not published, or not
        listed by the Explore API, or an export already)."""
        shown = self._kept.get(id(ds))
        return shown.files.get(resource.url, resource.url) if shown is not None else resource.url
