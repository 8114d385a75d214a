"""Opendatasoft metadata templates and the validation of ``{"value": ...}`` objects.

Error details are keyed by the field's dotted path relative to the request body
(``metadata.default.title`` when creating a dataset, ``title`` for ``PUT .../default/``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

LANGUAGES = ("en", "fr", "nl", "pt", "it", "ar", "de", "es", "ca", "eu", "sv")
REQUIRED = "This field is required."
_DATETIME_FORMAT = ("Datetime has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].")
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

    def out(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "label": self.label or self.name,
                "help_text": None, "is_hidden": False, "self_suggest": False,
                "is_filter": False, "i18n": False, "suggest_url": None,
                "choices": list(self.choices) if self.choices else None, "labels": None,
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


def default_templates(custom: dict[str, list[str]] | None = None) -> dict[str, Template]:
    """``default`` and ``internal`` as documented, plus ``custom`` (name → field names)."""
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
            FieldSpec("license_id", "text", "License"),
            FieldSpec("theme_id", "list", "Themes"),
            FieldSpec("draft", "boolean", "Draft"),
        ]),
    }
    for name, names in (custom or {}).items():
        templates[name] = _template(name, name, "basic", False,
                                    [FieldSpec(n, "longstring") for n in names])
    return templates


def dcat_template() -> Template:
    """The ``dcat`` template a domain gets with the DCAT-AP export (the usual fields)."""
    return _template("dcat", "DCAT", "dcat", True, [
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
    if value is None:
        return ["This field may not be null."] if spec.required else []
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
    if kind in ("datetime", "date"):
        if not isinstance(value, str):
            return [_DATETIME_FORMAT]
        try:
            if kind == "date":
                date.fromisoformat(value)
            else:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return [_DATETIME_FORMAT if kind == "datetime" else
                    "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]
    return []


def check_value(spec: FieldSpec, obj: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """A stored ``{"value": ...}`` for ``obj``, or the messages why it is refused."""
    if not isinstance(obj, dict):
        return None, [f'Expected an object with a "value" key but got type '
                      f'"{type(obj).__name__}".']
    if "value" not in obj:
        return None, ['"value": This field is required.']
    messages = _check_type(spec, obj["value"])
    if messages:
        return None, messages
    stored: dict[str, Any] = {"value": obj["value"]}
    if isinstance(obj.get("override_remote_value"), bool):
        stored["override_remote_value"] = obj["override_remote_value"]
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
