"""The reference of every job-file key, made from the typed settings themselves.

Each table of a job file is a settings class whose fields carry their type, default and
meaning (:func:`bulkport.settings.setting`); :func:`reference` renders them all as Markdown,
so the reference says what the code accepts. ``python -m bulkport.keyref`` prints it;
``docs/job-keys.md`` is that output, and a test keeps the two equal.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from typing import (
    Annotated,
    Any,
    Literal,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

import msgspec

from bulkport.config import KINDS, JobFile
from bulkport.jobs.token_filter import FilterTable
from bulkport.portals import registry
from bulkport.settings import Options

REGENERATE = "python -m bulkport.keyref > docs/job-keys.md"
_HEADER = "| key | type | default | meaning |\n|---|---|---|---|"
_WORDS = ("required", "not set")  # defaults that are no value


@dataclasses.dataclass(frozen=True)
class Table:
    """One table of a job file as the reference shows it.

    Attributes:
        heading: the section's Markdown heading (``"## [options]"``).
        settings: the settings class whose fields are the table's keys.
        intro: a line under the heading (may be empty).
        types: a key's type shown instead of its field's (a portal's fixed ``type``).
    """

    heading: str
    settings: type
    intro: str = ""
    types: Mapping[str, str] = dataclasses.field(default_factory=dict)


def undocumented(cls: type) -> list[str]:
    """The keys of settings class ``cls`` whose field says nothing of what it means."""
    return [f.name for f in dataclasses.fields(cls)
            if f.init and not str(f.metadata.get("doc", "")).strip()]


def _jobs(portal: registry.AnyPortal, side: int) -> str:
    """The kinds of job ``portal`` can be the [source] (side 0) or [target] (side 1) of."""
    kinds = [kind for kind, roles in KINDS.items() if roles[side] in portal.roles]
    return " and ".join(filter(None, [", ".join(kinds[:-1]), *kinds[-1:]]))


def tables() -> Iterator[Table]:
    """Every table of a job file: the top level, [options], [filter], then each portal's
    [source] and [target] tables (only those of the roles it plays), in registry order."""
    yield Table("## Top level", JobFile)
    yield Table("## [options]", Options, "Every job; all optional.")
    yield Table("## [filter]", FilterTable, "revoke-tokens jobs only. Every condition given "
                "must hold; an empty or absent table selects every token.")
    for name in registry.names():
        portal = registry.find(name, "keyref:")
        fixed = {"type": json.dumps(name)}
        for side, (table, settings) in enumerate((("source", portal.source_settings),
                                                  ("target", portal.target_settings))):
            jobs = _jobs(portal, side)
            if jobs:  # only the tables of the roles it plays
                yield Table(f"## {portal.title}: [{table}]", settings,
                            f'`type = "{name}"`: the [{table}] of {jobs} jobs.', fixed)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _bounds(meta: msgspec.Meta) -> str:
    """A Meta's constraints in words: ``1–1000``, ``> 0, ≤ 600``, ``matching ^x``."""
    parts: list[str] = []
    if meta.ge is not None and meta.le is not None:
        parts.append(f"{_number(meta.ge)}–{_number(meta.le)}")
    else:
        for bound, sign in ((meta.gt, ">"), (meta.ge, "≥"), (meta.lt, "<"), (meta.le, "≤")):
            if bound is not None:
                parts.append(f"{sign} {_number(bound)}")
    if meta.min_length is not None:
        parts.append(f"length ≥ {meta.min_length}")
    if meta.max_length is not None:
        parts.append(f"length ≤ {meta.max_length}")
    if meta.pattern is not None:
        parts.append(f"matching {meta.pattern}")
    return ", ".join(parts)


def _literal(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def type_name(hint: Any) -> str:
    """A type as a job file's writer reads it: ``int (1–1000)``, ``str | none``,
    ``"delete" | "private" | "keep"``, ``dict[str, str]``; a settings class is a ``table``."""
    origin = get_origin(hint)
    args = get_args(hint)
    if hint is type(None):
        return "none"
    if origin is Annotated:
        bounds = ", ".join(filter(None, (_bounds(m) for m in args[1:]
                                         if isinstance(m, msgspec.Meta))))
        return f"{type_name(args[0])} ({bounds})" if bounds else type_name(args[0])
    if origin is Union or origin is types.UnionType:
        if any(dataclasses.is_dataclass(a) for a in args):  # a table is absent, never none
            args = tuple(a for a in args if a is not type(None))
        return " | ".join(type_name(a) for a in args)
    if origin is Literal:
        return " | ".join(_literal(a) for a in args)
    if origin in (dict, Mapping):
        return f"dict[{type_name(args[0])}, {type_name(args[1])}]"
    if origin in (list, tuple, Sequence):
        return f"list[{type_name(args[0])}]"
    if is_typeddict(hint):
        fields = get_type_hints(hint)
        return "{" + ", ".join(f"{k} = {type_name(v)}" for k, v in fields.items()) + "}"
    if dataclasses.is_dataclass(hint):
        return "table"
    return hint.__name__ if isinstance(hint, type) else str(hint)


def default_text(field: dataclasses.Field[Any]) -> str:
    """A field's default as a job file would write it (``16``, ``"delete"``, ``{}``), or
    ``required``, or ``not set``."""
    if field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    elif field.default is dataclasses.MISSING:
        return "required"
    else:
        value = field.default
    if value is None:
        return "not set"
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, (int, float)):
        shown = repr(value)
    elif isinstance(value, str):
        shown = _literal(value)
    elif dataclasses.is_dataclass(value) or (isinstance(value, Mapping) and not value):
        shown = "{}"  # a table of defaults, an empty map
    else:
        shown = _literal(value)
    return shown


def _cell(text: str, *, code: bool = False) -> str:
    # GitHub reads \| as a pipe even inside a code span; < would open an HTML tag.
    text = text.replace("|", "\\|")
    return f"`{text}`" if code else text.replace("<", "\\<").replace("*", "\\*")


def _rows(table: Table) -> Iterator[str]:
    hints = get_type_hints(table.settings, include_extras=True)
    for f in dataclasses.fields(table.settings):
        if not f.init:
            continue
        shown = table.types.get(f.name) or type_name(hints[f.name])
        doc = str(f.metadata.get("doc", ""))
        default = default_text(f)
        default = _cell(default, code=default not in _WORDS)
        yield f"| `{f.name}` | {_cell(shown, code=True)} | {default} | {_cell(doc)} |"


def _section(table: Table) -> str:
    lines = [table.heading, ""]
    if table.intro:
        lines += [table.intro, ""]
    lines += [_HEADER, *_rows(table)]
    return "\n".join(lines)


def reference() -> str:
    """Every job-file key as Markdown: a section per table, a row per key."""
    head = (f"<!-- Generated from bulkport's typed settings: do not edit. Regenerate with "
            f"`{REGENERATE}`. -->\n"
            "# Job file keys\n\n"
            "Every key a job file may hold, table by table. A type `X | none` is a key that "
            "may be left out; `not set` means it is left out by default. Bounds are inclusive "
            "unless written `<` or `>`. Any string value may be `${VAR}`, read from the "
            "environment or a `.env` file.\n")
    return "\n\n".join([head.rstrip("\n"), *(_section(t) for t in tables())]) + "\n"


def main() -> int:
    """Print the reference (UTF-8, as it is: no newline translation)."""
    sys.stdout.buffer.write(reference().encode("utf-8"))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
