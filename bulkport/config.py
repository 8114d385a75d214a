"""Job files: TOML, with ``${VAR}`` read from the environment or a ``.env`` file.

Everything is checked before the first request: a bad job file is one line naming the file,
the table and the key.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union
from urllib.parse import SplitResult, urlsplit

from dotenv import dotenv_values

from bulkport.errors import ConfigError
from bulkport.jobs.token_filter import FilterTable, TokenFilter, parse_filter
from bulkport.portals import registry
from bulkport.portals.base import Limit, Role
from bulkport.settings import Options, SourceSettings, TargetSettings, from_table, keys, setting

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# What each kind of job needs of its [source] and [target] portals.
KINDS: dict[str, tuple[Role | None, Role]] = {
    "migrate": (Role.SOURCE, Role.TARGET),
    "mirror": (Role.MIRROR_SOURCE, Role.MIRROR_TARGET),
    "revoke-tokens": (None, Role.TOKENS),
}


@dataclass(frozen=True, kw_only=True)
class JobFile:
    """The top level of a job file: its keys, their types and meanings.

    :func:`load_job` reads them (each table through its own class); this class is the list
    of keys a job file may hold and what the key reference says of each.
    """

    kind: Literal["migrate", "mirror", "revoke-tokens"] = setting(
        "migrate", "what the job does: migrate copies datasets and their files, mirror keeps "
                   "a target equal to the source (removing what the source dropped), "
                   "revoke-tokens revokes API tokens")
    name: str | None = setting(
        None, "the job's name, a plain file name: it names the state directory "
              ".bulkport/<name>; not set: the job file's name without .toml")
    source: SourceSettings | None = setting(
        None, "the portal read from; migrate and mirror jobs need one (see the [source] "
              "tables below)")
    target: TargetSettings | None = setting(
        None, "the portal written to, or whose tokens a revoke-tokens job revokes; every job "
              "needs one (see the [target] tables below)")
    options: Options = setting(factory=Options, doc="how hard and how long the run works, "
                                                    "and what a mirror may do (see [options])")
    filter: FilterTable | None = setting(
        None, "revoke-tokens jobs only: which tokens to revoke (see [filter]); not set: every "
              "token the key can see")


TOP_LEVEL = tuple(keys(JobFile))
# What each command line override of [options] is called there.
FLAGS = {"connections": "--concurrency", "reason": "--reason",
         "max_delete_fraction": "--max-delete-fraction", "max_delete_count": "--max-delete-count"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_URL = re.compile(r"^https?://[^/\s]+")


@dataclass(frozen=True)
class JobConfig:
    path: Path
    name: str
    kind: str
    source: SourceSettings | None
    target: TargetSettings | None
    options: Options
    token_filter: TokenFilter | None = None  # revoke-tokens jobs only


def _substitute(value: Any, env: dict[str, str], where: str, path: Path) -> Any:
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(
                    f"{path}: {where}: environment variable {name} is not set "
                    "(export it or put it in a .env file)"
                )
            return env[name]

        return _VAR.sub(replace, value)
    if isinstance(value, dict):
        return {k: _substitute(v, env, f"{where}.{k}", path) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, f"{where}[{i}]", path) for i, v in enumerate(value)]
    return value


def _environment(job_path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for dotenv in (job_path.parent / ".env", Path.cwd() / ".env"):
        if dotenv.is_file():
            env.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    env.update(os.environ)  # the real environment wins over .env files
    return env


def _portal(table: Any, side: str, role: Role | None, kind: str, path: Path) -> Any:
    """A [source] or [target] table as its portal's typed settings (None when absent)."""
    where = f"{path}: [{side}]"
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    portal = registry.find(table.get("type"), where)
    if role is not None:
        registry.require(portal, role, where, why=f" for a {kind} job")
    url = table.get("url")
    if not isinstance(url, str) or not _URL.match(url):
        raise ConfigError(f"{where} url must be an http(s) URL, got {url!r}")
    try:
        _ = urlsplit(url).port  # raises for a port out of range or not a number
    except ValueError:
        raise ConfigError(f"{where} url has no valid port (1-65535), got {url!r}") from None
    # An empty or absent key is no key: ``api_key = "${KEY}"`` with KEY="" reads anonymously.
    values = {k: v for k, v in table.items() if not (k == "api_key" and v in ("", None))}
    values["url"] = url.rstrip("/")
    settings = portal.source_settings if side == "source" else portal.target_settings
    return from_table(settings, values, where)


def _options(table: Any, path: Path, overrides: dict[str, Any]) -> Options:
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"{path}: [options] must be a table")
    given = {k: v for k, v in overrides.items() if v is not None}
    for key, value in given.items():  # a bad value from the command line is named as given
        from_table(Options, {key: value}, f"{FLAGS.get(key, key)}:")
    options = from_table(Options, {**(table or {}), **given}, f"{path}: [options]")
    if 0 < options.rate_limit < 1:
        raise ConfigError(f"{path}: [options] rate_limit must be 0 (unlimited) or at least 1 "
                          f"request per second, got {options.rate_limit!r}")
    return options


def _read(path: Path) -> dict[str, Any]:
    """The job file's TOML, or one line saying why it cannot be read."""
    if path.exists() and not path.is_file():
        what = "a directory" if path.is_dir() else "not a regular file"
        raise ConfigError(f"{path}: is {what}; a job file is a TOML file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read job file: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(f"{path}: not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}, "
                          f"column {column}; save the file as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _top_level(raw: dict[str, Any], path: Path) -> None:
    if "mapping" in raw:
        raise ConfigError(f"{path}: [mapping] is not read by bulkport: field and value maps "
                          "are keys of [source] and [target] (fields, licenses, themes, "
                          "organizations); move them there")
    for key in raw:
        if key not in TOP_LEVEL:
            hint = difflib.get_close_matches(key, TOP_LEVEL, n=1)
            also = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{path}: unknown top-level key {key!r}{also}; a job file holds "
                              f"{', '.join(TOP_LEVEL)}")


def _name(raw: dict[str, Any], path: Path) -> str:
    """The job's name: a plain file name, as it names the state directory ``.bulkport/<name>``."""
    name = raw.get("name", path.stem)
    given = "name" in raw
    if not isinstance(name, str):
        raise ConfigError(f"{path}: name must be a string, got {name!r}")
    if (not name or name in (".", "..") or "/" in name or "\\" in name
            or any(not ch.isprintable() for ch in name)):
        where = "name" if given else f"the file's name {path.name!r}, the job's default name,"
        raise ConfigError(f"{path}: {where} must be a plain file name (no /, \\ or ..; it "
                          f"names the state directory .bulkport/<name>), got {name!r}")
    return name


def _same_portal(a: str, b: str) -> bool:
    """Whether two portal URLs name one portal (scheme, default port and case aside)."""
    ua, ub = urlsplit(a), urlsplit(b)
    def where(u: SplitResult) -> tuple[str | None, int | None, str]:
        port = u.port if u.port not in (80, 443) else None
        return u.hostname, port, u.path.rstrip("/")
    return where(ua) == where(ub)


def job_name(path: Path) -> str:
    """The name of the job in ``path`` (which names its state directory), read without
    resolving ``${VARS}``: reading a job's history needs no keys.

    Raises:
        ConfigError: the file cannot be read, or its name is not a plain file name.
    """
    return _name(_read(path), path)


def load_job(path: Path, **overrides: Any) -> JobConfig:
    """Read and check a job file.

    Args:
        overrides: ``[options]`` values from the command line (None = not given).

    Raises:
        ConfigError: one line saying what is wrong and where.
    """
    return _checked(_read(path), path, overrides)


JobSource = Union[str, "os.PathLike[str]", Mapping[str, Any]]
TEXT, TABLE = Path("<job text>"), Path("<job table>")  # how messages name them


def load_any(job: JobSource, **overrides: Any) -> JobConfig:
    """A job given as a file's path, as TOML text or as a dict (the tables of a job file).

    A string is TOML text when it holds a newline or an ``=``, and is not a file's name.
    Text and dicts must say their ``name``: it names the job's state directory.

    Raises:
        ConfigError: one line saying what is wrong and where.
    """
    if isinstance(job, Mapping):
        return _checked(_named(dict(job), TABLE), TABLE, overrides)
    if isinstance(job, str) and ("\n" in job or "=" in job) and not Path(job).is_file():
        try:
            raw = tomllib.loads(job)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{TEXT}: not valid TOML: {exc}") from None
        return _checked(_named(raw, TEXT), TEXT, overrides)
    return load_job(Path(job), **overrides)


def _named(raw: dict[str, Any], origin: Path) -> dict[str, Any]:
    if "name" not in raw:
        raise ConfigError(f"{origin}: name is required for a job given as text or a table: it "
                          "names the job's state directory (.bulkport/<name>)")
    return raw


def _checked(read: dict[str, Any], path: Path, overrides: dict[str, Any]) -> JobConfig:
    """The job a job file's tables describe, ``${VARS}`` resolved and every value checked."""
    raw = _substitute(read, _environment(path), "job", path)
    kind = raw.get("kind", JobFile.kind)
    if not isinstance(kind, str) or kind not in KINDS:
        raise ConfigError(f"{path}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    source_role, target_role = KINDS[kind]
    _top_level(raw, path)
    name = _name(raw, path)
    source = _portal(raw.get("source"), "source", source_role, kind, path)
    target = _portal(raw.get("target"), "target", target_role, kind, path)
    options = _options(raw.get("options"), path, overrides)
    if source_role is not None and (source is None or target is None):
        raise ConfigError(f"{path}: a {kind} job needs both a [source] and a [target] table")
    if source is not None and target is not None and _same_portal(source.url, target.url):
        raise ConfigError(f"{path}: [source] and [target] are the same portal ({target.url}): "
                          "it would then hold every dataset twice; point [target] at another "
                          "portal")
    if kind == "mirror" and options.on_delete == "delete":
        reason = registry.limit(registry.of(target), Limit.DELETE)
        if reason:
            raise ConfigError(f"{path}: [target] {target.url}: {reason}")
    token_filter = None
    if kind == "revoke-tokens":
        token_filter = _revoke_filter(raw, target, path)
    elif "filter" in raw:
        raise ConfigError(f"{path}: [filter] belongs to revoke-tokens jobs only")
    return JobConfig(
        path=path,
        name=name,
        kind=kind,
        source=source,
        target=target,
        options=options,
        token_filter=token_filter,
    )


def _revoke_filter(raw: dict[str, Any], target: TargetSettings | None,
                   path: Path) -> TokenFilter:
    if target is None:
        raise ConfigError(f"{path}: a revoke-tokens job needs a [target] table (the portal "
                          "whose tokens to revoke)")
    if not target.api_key:
        raise ConfigError(f"{path}: [target] api_key is required to list and revoke tokens")
    token_filter = parse_filter(raw.get("filter"), path)
    reason = registry.limit(registry.of(target), Limit.TOKEN_LAST_ACCESS)
    if token_filter.uses_last_access and reason:
        raise ConfigError(f"{path}: [filter] last_access_before / never_used: {reason}")
    return token_filter
