"""Opendatasoft metadata templates and the validation of ``{"value": ...}`` objects.

Error details are keyed by the field's dotted path relative to the request body
(``metadata.default.title`` when creating a dataset, ``title`` for ``PUT .../default/``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

LANGUAGES = ("en", "fr", "nl", "pt", "it", "ar", "de", "es", "ca", "eu", "sv")
REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."
# A template's ``type`` (the document's MetadataTemplate enum); only basic and admin ones
# can be created on a domain.
TEMPLATE_TYPES = ("interop", "basic", "extra", "admin")
# The document's datetime fields are JSON Schema "date-time": RFC 3339, seconds and a zone.
_DATETIME_FORMAT = ("Datetime has wrong format. Use RFC 3339 instead: "
                    "YYYY-MM-DDThh:mm:ss[.uuuuuu](Z|+HH:MM|-HH:MM).")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_FACETSORTS = ("count", "num", "alphanum", "-count", "-num", "-alphanum")
_STRING_TYPES = frozenset({"text", "html", "longstring", "geo_shape", "geo_area", "uri_enum"})
_LIST_TYPES = frozenset({"list", "multitext", "enumlist", "uri_enumlist"})


@dataclass
class FieldSpec:
    """One field of a template (``MetadataTemplateField``)."""

    name: str
    type: str = "text"
    label: str = ""
    required: bool = False
    choices: tuple[str, ...] | None = None
    labels: dict[str, dict[str, str]] | None = None  # choice → language → label
    help_text: str | None = None
    # Values the field ``type`` cannot describe (objects): their own check, else the type's.
    check: Callable[[Any], list[str]] | None = None

    def out(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "label": self.label or self.name,
                "help_text": self.help_text, "is_hidden": False, "self_suggest": False,
                "is_filter": False, "i18n": False, "suggest_url": None,
                "choices": list(self.choices) if self.choices else None,
                "labels": dict(self.labels) if self.labels else None,
                "requirement_level": "mandatory" if self.required else "optional"}


@dataclass
class Template:
    """A metadata template (``MetadataTemplate``) and its fields by name."""

    name: str
    title: str
    type: str
    is_system: bool
    fields: dict[str, FieldSpec] = field(default_factory=dict)

    def out(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "type": self.type, "is_active": True,
                "is_always_active": self.name == "default", "is_system": self.is_system,
                "schema": [spec.out() for spec in self.fields.values()]}


def _template(name: str, title: str, type_: str, is_system: bool,
              specs: list[FieldSpec]) -> Template:
    return Template(name, title, type_, is_system, {spec.name: spec for spec in specs})


def _facets(value: Any) -> list[str]:
    if not isinstance(value, list):
        return [f'Expected a list of items but got type "{type(value).__name__}".']
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("field_name"), str):
            return ['Each facet must be an object with a "field_name" string.']
        if "facetsort" in item and item["facetsort"] not in _FACETSORTS:
            return [f'"facetsort" must be one of {", ".join(_FACETSORTS)}.']
        if any(not isinstance(item[k], bool) for k in ("disjunctive", "timerange_filter")
               if k in item):
            return ['"disjunctive" and "timerange_filter" must be booleans.']
    return []


def _languages_by_field(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return [f'Expected a dictionary of items but got type "{type(value).__name__}".']
    for name, languages in value.items():
        if not isinstance(languages, list) or not languages or any(
                lang not in ("en", "fr", "nl") for lang in languages):
            return [f'"{name}": expected a non-empty list of languages among en, fr, nl.']
    return []


def _boosts(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return [f'Expected a dictionary of items but got type "{type(value).__name__}".']
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value.values()):
        return ["Each boost must be an integer greater than or equal to 0."]
    return []


# The document's DatasetMetadataVisualization, field by field: its value type in the
# template field types (a string is "text", a list of strings "list").
_VISUALIZATION = (
    ("analyze_disabled", "boolean"), ("analyze_default", "text"), ("table_fields", "list"),
    ("table_default_sort_field", "text"), ("table_default_sort_direction", "text"),
    ("map_disabled", "boolean"), ("map_marker_picto", "text"), ("map_marker_color", "text"),
    ("map_marker_hidemarkershape", "boolean"), ("map_tooltip_title", "text"),
    ("map_tooltip_fields", "list"), ("map_tooltip_disabled", "boolean"),
    ("map_tooltip_html_enabled", "boolean"), ("map_tooltip_html", "text"),
    ("map_tooltip_sort_field", "text"), ("map_tooltip_sort_direction", "text"),
    ("map_basemap", "text"), ("images_disabled", "boolean"), ("media_gallery_fields", "list"),
    ("image_title", "text"), ("image_fields", "list"), ("image_tooltip_html_enabled", "boolean"),
    ("image_tooltip_html", "list"), ("calendar_enabled", "boolean"),
    ("calendar_event_title", "text"), ("calendar_event_start", "text"),
    ("calendar_event_end", "text"), ("calendar_tooltip_html_enabled", "boolean"),
    ("calendar_tooltip_html", "text"), ("calendar_tooltip_fields", "list"),
    ("calendar_event_color", "text"), ("calendar_available_views", "text"),
    ("calendar_default_view", "text"), ("custom_view_enabled", "boolean"),
    ("custom_view_html", "text"), ("custom_view_css", "text"), ("custom_view_icon", "text"),
    ("custom_view_title", "text"), ("custom_view_slug", "text"),
)


def _configured(name: str, kind: str, label: str,
                ids: dict[str, str] | None) -> FieldSpec:
    """An ``internal`` field holding identifiers configured on the domain (id → title):
    listed as its ``choices``, their titles as ``labels``; none given, a free value."""
    if ids is None:
        return FieldSpec(name, "list" if kind == "enumlist" else "text", label)
    return FieldSpec(name, kind, label, choices=tuple(ids),
                     labels={key: {"en": title} for key, title in ids.items()})


def default_templates(custom: dict[str, list[str]] | None = None, *,
                      licenses: dict[str, str] | None = None,
                      themes: dict[str, str] | None = None) -> dict[str, Template]:
    """The templates every domain has (``default``, ``internal``, ``visualization``,
    ``asset_content_configuration``, as documented), plus ``custom`` (name → field names).

    Args:
        licenses, themes: the licences and themes configured on the domain (id → title):
            ``internal.license_id`` / ``theme_id`` then list them as their ``choices``
            and refuse any other id. None: the fields take any value.
    """
    templates = {
        "default": _template("default", "Default", "basic", True, [
            FieldSpec("title", "text", "Title", required=True),
            FieldSpec("description", "html", "Description"),
            FieldSpec("keyword", "list", "Keywords"),
            FieldSpec("modified", "datetime", "Modified", required=True),
            FieldSpec("modified_updates_on_metadata_change", "boolean"),
            FieldSpec("modified_updates_on_data_change", "boolean"),
            FieldSpec("geographic_reference", "list", "Geographic references"),
            FieldSpec("geographic_reference_auto", "boolean"),
            FieldSpec("language", "enum", "Language", required=True, choices=LANGUAGES),
            FieldSpec("timezone", "text", "Timezone"),
            FieldSpec("publisher", "text", "Publisher"),
            FieldSpec("references", "text", "References"),
            FieldSpec("attributions", "list", "Attributions"),
        ]),
        "internal": _template("internal", "Internal", "admin", True, [
            _configured("license_id", "enum", "License", licenses),
            _configured("theme_id", "enumlist", "Themes", themes),
            FieldSpec("draft", "boolean", "Draft"),
        ]),
        "visualization": _template("visualization", "Visualization", "extra", True, [
            FieldSpec(name, kind) for name, kind in _VISUALIZATION]),
        # The field types have no object type: these state the closest one and check their
        # values as the document's DatasetMetadataAssetContentConfiguration describes them.
        "asset_content_configuration": _template(
            "asset_content_configuration", "Asset content configuration", "extra", True, [
                FieldSpec("facets", "list", "Facets", check=_facets,
                          help_text='A list of {"field_name", "facetsort"?, "disjunctive"?, '
                                    '"timerange_filter"?} objects.'),
                FieldSpec("fields_displayed_in_specific_languages", "text",
                          "Fields displayed in specific languages", check=_languages_by_field,
                          help_text="An object: field name → non-empty list of languages."),
                FieldSpec("records_search_boosts", "text", "Records search boosts",
                          check=_boosts, help_text="An object: field name → integer ≥ 0."),
            ]),
    }
    for name, names in (custom or {}).items():
        templates[name] = _template(name, name, "basic", False,
                                    [FieldSpec(n, "longstring") for n in names])
    return templates


def dcat_template() -> Template:
    """The ``dcat`` template a domain gets with the DCAT-AP export (the usual fields)."""
    return _template("dcat", "DCAT", "interop", True, [
        FieldSpec("created", "datetime", "Creation date"),
        FieldSpec("issued", "datetime", "Issued"),
        FieldSpec("creator", "text", "Creator"),
        FieldSpec("contributor", "text", "Contributor"),
        FieldSpec("contact_name", "text", "Contact name"),
        FieldSpec("contact_email", "text", "Contact email"),
        FieldSpec("accrualperiodicity", "text", "Update frequency"),
        FieldSpec("spatial", "text", "Spatial coverage"),
        FieldSpec("temporal", "text", "Temporal coverage"),
        FieldSpec("granularity", "text", "Granularity"),
        FieldSpec("dataquality", "html", "Data quality"),
        FieldSpec("conforms_to", "list", "Conforms to"),
        FieldSpec("relation", "list", "Relation"),
    ])


def _check_type(spec: FieldSpec, value: Any) -> list[str]:
    if value is None:  # a field is removed with a DELETE, not set to null
        return [NOT_NULL]
    if spec.check is not None:
        return spec.check(value)
    kind = spec.type
    if kind in _STRING_TYPES:
        if not isinstance(value, str):
            return ["Not a valid string."]
        return ["This field may not be blank."] if not value.strip() else []
    if kind in _LIST_TYPES:
        if not isinstance(value, list):
            return [f'Expected a list of items but got type "{type(value).__name__}".']
        if not all(isinstance(item, str) and item for item in value):
            return ["Each item must be a non-empty string."]
        if kind == "enumlist" and spec.choices is not None:
            return [f'"{item}" is not a valid choice.' for item in value
                    if item not in spec.choices]
        return []
    if kind == "boolean":
        return [] if isinstance(value, bool) else ["Must be a valid boolean."]
    if kind == "int":
        return [] if isinstance(value, int) and not isinstance(value, bool) else [
            "A valid integer is required."]
    if kind == "double":
        return [] if isinstance(value, (int, float)) and not isinstance(value, bool) else [
            "A valid number is required."]
    if kind == "enum":
        return [] if value in (spec.choices or ()) else [f'"{value}" is not a valid choice.']
    if kind == "datetime":
        return [] if _is_datetime(value) else [_DATETIME_FORMAT]
    if kind == "date":
        try:
            ok = isinstance(value, str) and len(value) == 10 and bool(date.fromisoformat(value))
        except ValueError:
            ok = False
        return [] if ok else ["Date has wrong format. Use one of these formats instead: "
                              "YYYY-MM-DD."]
    return []


def _is_datetime(value: Any) -> bool:
    """An RFC 3339 date-time (a real date and time: not 2024-02-30T25:00:00Z)."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value[:19])
        hours, minutes = (int(value[-5:-3]), int(value[-2:])) if value[-1] != "Z" else (0, 0)
    except ValueError:
        return False
    return hours < 24 and minutes < 60


def check_value(spec: FieldSpec, obj: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """A stored ``{"value": ...}`` for ``obj``, or the messages why it is refused."""
    if not isinstance(obj, dict):
        return None, [f'Expected an object with a "value" key but got type '
                      f'"{type(obj).__name__}".']
    if "value" not in obj:
        return None, ['"value": This field is required.']
    messages = _check_type(spec, obj["value"])
    override = obj.get("override_remote_value")
    if "override_remote_value" in obj and not isinstance(override, bool):
        messages.append('"override_remote_value": Must be a valid boolean.')
    if messages:
        return None, messages
    stored: dict[str, Any] = {"value": obj["value"]}
    if isinstance(override, bool):
        stored["override_remote_value"] = override
    return stored, []


def check_template(template: Template, values: Any, prefix: str,
                   errors: dict[str, list[str]]) -> dict[str, Any]:
    """Validate a whole template's values (a PUT replaces them all)."""
    if not isinstance(values, dict):
        errors[prefix.rstrip(".") or "non_field_errors"] = [
            f'Expected a dictionary of items but got type "{type(values).__name__}".']
        return {}
    clean: dict[str, Any] = {}
    for name, obj in values.items():
        spec = template.fields.get(name)
        if spec is None:
            errors[prefix + name] = [f"'{name}' is not a field of the '{template.name}' "
                                     "metadata template."]
            continue
        stored, messages = check_value(spec, obj)
        if messages:
            errors[prefix + name] = messages
        elif stored is not None:
            clean[name] = stored
    for spec in template.fields.values():
        if spec.required and spec.name not in values:
            errors[prefix + spec.name] = [REQUIRED]
    return clean


def check_metadata(templates: dict[str, Template], metadata: Any, prefix: str,
                   errors: dict[str, list[str]]) -> dict[str, Any]:
    """Validate a whole ``metadata`` object (``default`` is required)."""
    if not isinstance(metadata, dict):
        errors[prefix.rstrip(".") or "non_field_errors"] = [
            f'Expected a dictionary of items but got type "{type(metadata).__name__}".']
        return {}
    clean: dict[str, Any] = {}
    for name, values in metadata.items():
        template = templates.get(name)
        if template is None:
            errors[prefix + name] = [f"Unknown metadata template '{name}'."]
            continue
        clean[name] = check_template(template, values, f"{prefix}{name}.", errors)
    if "default" not in metadata:
        errors[prefix + "default"] = [REQUIRED]
    return clean
