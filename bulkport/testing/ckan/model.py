"""CKAN's data rules for the simulator: licences, formats, names, and the dict shapes."""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from bulkport.testing.ckan.actions import Upload

# CKAN's default licence register (ckan/model/license.py), in its order.
LICENSES: list[dict[str, Any]] = [
    {"id": "notspecified", "title": "License not specified", "url": "", "od": False},
    {"id": "odc-pddl", "title": "Open Data Commons Public Domain Dedication and License (PDDL)",
     "url": "http://www.opendefinition.org/licenses/odc-pddl", "od": True},
    {"id": "odc-odbl", "title": "Open Data Commons Open Database License (ODbL)",
     "url": "http://www.opendefinition.org/licenses/odc-odbl", "od": True},
    {"id": "odc-by", "title": "Open Data Commons Attribution License",
     "url": "http://www.opendefinition.org/licenses/odc-by", "od": True},
    {"id": "cc-zero", "title": "Creative Commons CCZero",
     "url": "http://www.opendefinition.org/licenses/cc-zero", "od": True},
    {"id": "cc-by", "title": "Creative Commons Attribution",
     "url": "http://www.opendefinition.org/licenses/cc-by", "od": True},
    {"id": "cc-by-sa", "title": "Creative Commons Attribution Share-Alike",
     "url": "http://www.opendefinition.org/licenses/cc-by-sa", "od": True},
    {"id": "gfdl", "title": "GNU Free Documentation License",
     "url": "http://www.opendefinition.org/licenses/gfdl", "od": True},
    {"id": "other-open", "title": "Other (Open)", "url": "", "od": True},
    {"id": "other-pd", "title": "Other (Public Domain)", "url": "", "od": True},
    {"id": "other-at", "title": "Other (Attribution)", "url": "", "od": True},
    {"id": "uk-ogl", "title": "UK Open Government Licence (OGL)",
     "url": "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/",
     "od": True},
    {"id": "cc-nc", "title": "Creative Commons Non-Commercial (Any)",
     "url": "http://creativecommons.org/licenses/by-nc/2.0/", "od": False},
    {"id": "other-nc", "title": "Other (Non-Commercial)", "url": "", "od": False},
    {"id": "other-closed", "title": "Other (Not Open)", "url": "", "od": False},
]
LICENSES_BY_ID = {lic["id"]: lic for lic in LICENSES}

# Keys of the package schema: an extra may not reuse one of them.
PACKAGE_KEYS = frozenset({
    "id", "name", "title", "author", "author_email", "maintainer", "maintainer_email",
    "license_id", "notes", "url", "version", "state", "type", "owner_org", "private",
    "resources", "tags", "tag_string", "plugin_data", "extras", "save", "return_to",
    "relationships_as_object", "relationships_as_subject", "groups", "metadata_modified",
    "__extras", "__junk", "__before",
})
PACKAGE_TEXT_FIELDS = ("title", "author", "author_email", "maintainer", "maintainer_email",
                       "license_id", "notes", "url", "version")
# Resource columns; any other key of a resource dict is one of its extras.
RESOURCE_COLUMNS = ("url", "format", "description", "hash", "name", "resource_type",
                    "mimetype", "mimetype_inner", "cache_url", "size", "created",
                    "last_modified", "cache_last_updated", "url_type")
# Columns CKAN's Resource model clears when an update leaves them out (``doc=
# 'remove_if_not_provided'`` in ckan/model/resource.py), with the blank each gets:
# resource_update and the resources of package_update replace a resource, while
# resource_patch sends the rest of it back. Extras not sent are dropped too.
RESOURCE_CLEARED = {"url": "", "description": None, "resource_type": None, "mimetype": None,
                    "mimetype_inner": None}
RESOURCE_SKIP = frozenset({"package_id", "position", "state", "upload", "clear_upload",
                           "metadata_modified", "datastore_active", "id"})

NAME_RE = re.compile(r"[a-z0-9_\-]*$")
TAG_RE = re.compile(r"[\w \-.]*$", re.UNICODE)
EMAIL_RE = re.compile(
    r"^(?!\.)(?!.*\.$)(?!.*?\.\.)[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9]"
    r"(?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FORMATS = {"csv": "CSV", "pdf": "PDF", "json": "JSON", "xlsx": "XLSX", "xls": "XLS",
           "zip": "ZIP", "geojson": "GeoJSON", "txt": "TXT", "html": "HTML", "xml": "XML",
           "ods": "ODS", "shp": "SHP", "kml": "KML", "parquet": "Parquet"}
_MIME_FORMATS = {"text/csv": "CSV", "application/pdf": "PDF", "application/json": "JSON",
                 "application/zip": "ZIP", "text/plain": "TXT", "text/html": "HTML",
                 "application/xml": "XML", "text/xml": "XML",
                 "application/vnd.ms-excel": "XLS",
                 "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "XLSX"}


_LATIN1 = {
    **{ch: unicodedata.normalize("NFKD", ch)[0]
       for ch in "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿ"},
    "Æ": "Ae", "æ": "ae", "Ð": "Th", "ð": "th", "Ø": "O", "ø": "o", "Þ": "th", "þ": "th",
    "ß": "ss",
}


def now_iso() -> str:
    """CKAN's timestamp format: naive UTC with microseconds."""
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")


def as_bool(value: Any) -> bool:
    """CKAN's ``asbool`` on request values ("true", "1", "yes"... are true)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    return isinstance(value, str) and value.strip().lower() in {"true", "yes", "on", "y", "t",
                                                                  "1"}


def as_text(value: Any) -> Any:
    """CKAN's ``unicode_safe``: anything but None becomes a string."""
    return value if value is None or isinstance(value, str) else str(value)


def as_int(value: Any) -> int | None:
    """CKAN's ``int_validator``; None for "no value"; raises ValueError when not an int."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        if value != int(value):
            raise ValueError(value)
        return int(value)
    return int(str(value).strip())


def check_name(value: Any) -> list[str]:
    """Messages of ``name_validator`` (empty when the name is valid)."""
    if not isinstance(value, str):
        return ["Names must be strings"]
    if value in ("new", "edit", "search"):
        return ["That name cannot be used"]
    if len(value) < 2:
        return ["Must be at least 2 characters long"]
    if len(value) > 100:
        return ["Name must be a maximum of 100 characters long"]
    if not NAME_RE.match(value):
        return ["Must be purely lowercase alphanumeric (ascii) characters and these "
                "symbols: -_"]
    return []


def check_package_name(value: str, *, in_use: bool) -> list[str]:
    """Messages of a package name's validators, ``name_validator`` then
    ``package_name_validator``: navl runs both, so a short name gets two messages."""
    messages = check_name(value)
    if in_use:
        messages.append("That URL is already in use.")
    if len(value) < 2:
        messages.append(f'Name "{value}" length is less than minimum 2')
    if len(value) > 100:
        messages.append(f'Name "{value}" length is more than maximum 100')
    return messages


def check_tag(name: str) -> list[str]:
    if len(name) < 2:
        return [f'Tag "{name}" length is less than minimum 2']
    if len(name) > 100:
        return [f'Tag "{name}" length is more than maximum 100']
    if not TAG_RE.match(name):
        return [f'Tag "{name}" can only contain alphanumeric characters, spaces (" "), '
                'hyphens ("-"), underscores ("_") or dots (".")']
    return []


def check_email(value: Any) -> list[str]:
    if not value:
        return []
    value = str(value).strip()
    return [] if EMAIL_RE.match(value) else [f"Email {value} is not a valid format"]


def _ascii(text: str) -> str:
    """CKAN's ``substitute_ascii_equivalents``: Latin-1 letters mapped, other non-ASCII dropped."""
    return "".join(ch if ord(ch) < 128 else _LATIN1.get(ch, "") for ch in text)


def munge_filename(filename: str) -> str:
    """CKAN's ``munge_filename``: the name a hosted file gets in its download URL."""
    name = _ascii(filename.rsplit("/", 1)[-1].lower().strip())
    name = re.sub(r"[^a-zA-Z0-9_. -]", "", name).replace(" ", "-")
    name = re.sub(r"-+", "-", name)
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    ext = ext[:21]
    stem = stem.ljust(max(1, 3 - len(ext)), "_")[: 100 - len(ext)]
    return stem + ext


def guess_mimetype(filename: str) -> str | None:
    return mimetypes.guess_type(filename)[0]


def clean_format(value: Any) -> str:
    """CKAN's ``clean_format``: the canonical spelling of a known format."""
    text = str(value).strip()
    return FORMATS.get(text.lower(), text)


def guess_format(url: str) -> str:
    """CKAN's ``if_empty_guess_format``: a format from the URL's file extension."""
    mimetype = guess_mimetype(url.split("?", 1)[0])
    if mimetype in _MIME_FORMATS:
        return _MIME_FORMATS[mimetype]
    ext = url.split("?", 1)[0].rsplit(".", 1)[-1].lower() if "." in url else ""
    return FORMATS.get(ext, "")


def license_fields(license_id: Any) -> dict[str, Any]:
    """``license_title`` (and ``license_url``, ``isopen``) as ``package_show`` adds them."""
    lic = LICENSES_BY_ID.get(license_id) if isinstance(license_id, str) else None
    if lic is None:
        return {"license_title": license_id or None, "isopen": False}
    fields: dict[str, Any] = {"license_title": lic["title"], "isopen": lic["od"]}
    if lic["url"]:
        fields["license_url"] = lic["url"]
    return fields


def license_list() -> list[dict[str, Any]]:
    """``license_list``'s result."""
    return [{"id": lic["id"], "title": lic["title"], "url": lic["url"], "status": "active",
             "maintainer": "", "family": "", "domain_content": "False", "domain_data": "False",
             "domain_software": "False", "is_generic": "False",
             "od_conformance": "approved" if lic["od"] else "not reviewed",
             "osd_conformance": "not reviewed"} for lic in LICENSES]


def org_summary(org: dict[str, Any]) -> dict[str, Any]:
    """The ``organization`` dict embedded in a package."""
    return {key: org.get(key) for key in (
        "id", "name", "title", "type", "description", "image_url", "created",
        "is_organization", "approval_status", "state")}


def resource_out(res: dict[str, Any], base: str) -> dict[str, Any]:
    """A stored resource as the API shows it: hosted files get their download URL."""
    out = dict(res)
    url = res.get("url") or ""
    if res.get("url_type") == "upload":
        filename = munge_filename(url.rsplit("/", 1)[-1] or "file")
        out["url"] = (f"{base}/dataset/{res['package_id']}/resource/{res['id']}/download/"
                      f"{filename}")
    elif url and "://" not in url:
        out["url"] = "http://" + url.lstrip("/")
    return out


def package_out(pkg: dict[str, Any], orgs: dict[str, dict[str, Any]],
                base: str) -> dict[str, Any]:
    """A stored package as ``package_show`` / ``package_search`` return it."""
    out = dict(pkg)
    out.pop("indexed_ts", None)  # Solr's own field: package_show never shows it
    org = orgs.get(pkg.get("owner_org") or "")
    out["organization"] = org_summary(org) if org else None
    out["resources"] = [resource_out(res, base) for res in pkg["resources"]]
    out["num_resources"] = len(pkg["resources"])
    out["num_tags"] = len(pkg["tags"])
    out.update(license_fields(pkg.get("license_id")))
    return out


def with_file(item: dict[str, Any], upload: Upload | None, *,
              keep_size: bool = False) -> dict[str, Any]:
    """A resource dict as ``ResourceUpload`` and ``package_update`` leave it for a file.

    As in CKAN, ``mimetype`` is only guessed (from the old URL, then the file name) when
    the dict has no ``mimetype`` key, so a ``resource_patch`` keeps the old one; ``size``
    is the file's, unless ``keep_size`` (``resource_create`` keeps a size it was given).
    """
    item = {k: v for k, v in item.items() if k not in ("upload", "clear_upload")}
    if upload is None:
        return item
    old_url = str(item.get("url") or "")
    item["url"] = munge_filename(upload.filename)
    item["url_type"] = "upload"
    item["last_modified"] = now_iso()
    if not (keep_size and "size" in item):
        item["size"] = upload.size
    if "mimetype" not in item:
        guessed = guess_mimetype(old_url) if old_url and urlparse(old_url).path else None
        item["mimetype"] = guessed or upload.mimetype
    return item
