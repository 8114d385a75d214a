"""Job files: TOML, with ``${VAR}`` read from the environment or a ``.env`` file.

Everything is checked before the first request: a bad job file is one line naming the file,
the table and the key.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from bulkport.errors import ConfigError
from bulkport.token_filter import TokenFilter, parse_filter

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KINDS = ("migrate", "mirror", "revoke-tokens")
PORTAL_TYPES = ("ckan", "portaljs", "ods", "datapress")
ON_DELETE = ("delete", "private", "keep")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class PortalConfig:
    """A ``[source]`` or ``[target]`` table."""

    type: str
    url: str
    api_key: str | None = None
    auth_header: str = "Authorization"
    settings: dict[str, Any] = field(default_factory=dict)  # the portal-specific keys

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)


@dataclass(frozen=True)
class Options:
    """The ``[options]`` table."""

    connections: int = 16  # per host
    dataset_workers: int = 0  # 0: four per connection (most of a dataset's time is latency)
    transfers: int = 8  # files streamed at once
    rate_limit: float = 0.0  # requests per second per host, 0 = unlimited
    retries: int = 6
    page_size: int = 1000
    page_concurrency: int = 2
    publish: bool = True
    status_timeout: float = 600.0
    status_poll: float = 0.1
    reason: str = "revoked with bulkport"  # sent with each revocation where the API keeps one
    # mirror jobs
    on_delete: str = "delete"  # what a record the source dropped becomes: delete, private, keep
    max_delete_fraction: float = 0.10  # of the mirrored records, per run
    max_delete_count: int = 0  # per run, 0 = no limit by count
    safety_margin: float = 3600.0  # seconds re-read before the watermark ([source] may override)
    keep_reports: int = 30  # run reports kept in <state dir>/reports/

    @property
    def workers(self) -> int:
        return self.dataset_workers or 4 * self.connections


@dataclass(frozen=True)
class JobConfig:
    path: Path
    name: str
    kind: str
    source: PortalConfig | None
    target: PortalConfig | None
    options: Options
    mapping: dict[str, Any] = field(default_factory=dict)
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


def _portal(table: Any, name: str, path: Path) -> PortalConfig | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    kind = table.get("type")
    if kind not in PORTAL_TYPES:
        raise ConfigError(
            f"{path}: [{name}] type must be one of {', '.join(PORTAL_TYPES)}, got {kind!r}"
        )
    url = table.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(f"{path}: [{name}] url must be an http(s) URL, got {url!r}")
    api_key = table.get("api_key") or None
    if api_key is not None and not isinstance(api_key, str):
        raise ConfigError(f"{path}: [{name}] api_key must be a string")
    settings = {k: v for k, v in table.items() if k not in ("type", "url", "api_key", "auth_header")}
    return PortalConfig(
        type=kind, url=url.rstrip("/"), api_key=api_key,
        auth_header=str(table.get("auth_header", "Authorization")), settings=settings,
    )


def _options(table: Any, path: Path, overrides: dict[str, Any]) -> Options:
    table = {**(table or {}), **{k: v for k, v in overrides.items() if v is not None}}
    known = {f.name: f for f in fields(Options)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            also = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{path}: [options] unknown key {key!r}{also}")
        default = getattr(Options, key)
        expected = type(default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(
                f"{path}: [options] {key} must be {expected.__name__}, got {value!r}"
            )
        if expected in (int, float) and value < 0:
            raise ConfigError(f"{path}: [options] {key} must not be negative, got {value!r}")
        values[key] = value
    options = Options(**values)
    if options.connections < 1:
        raise ConfigError(f"{path}: [options] connections must be at least 1")
    if options.on_delete not in ON_DELETE:
        raise ConfigError(f"{path}: [options] on_delete must be one of {', '.join(ON_DELETE)}, "
                          f"got {options.on_delete!r}")
    if options.max_delete_fraction > 1:
        raise ConfigError(f"{path}: [options] max_delete_fraction is a fraction (0.1 = 10 %), "
                          f"got {options.max_delete_fraction!r}")
    return options


def load_job(path: Path, **overrides: Any) -> JobConfig:
    """Read and check a job file.

    Args:
        overrides: ``[options]`` values from the command line (None = not given).

    Raises:
        ConfigError: one line saying what is wrong and where.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read job file: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    raw = _substitute(raw, _environment(path), "job", path)
    kind = raw.get("kind", "migrate")
    if kind not in KINDS:
        raise ConfigError(f"{path}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    unknown = set(raw) - {"kind", "name", "source", "target", "options", "mapping", "filter"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    source = _portal(raw.get("source"), "source", path)
    target = _portal(raw.get("target"), "target", path)
    if kind in ("migrate", "mirror") and (source is None or target is None):
        raise ConfigError(f"{path}: a {kind} job needs both a [source] and a [target] table")
    token_filter = None
    if kind == "revoke-tokens":
        token_filter = _revoke_filter(raw, target, path)
    elif "filter" in raw:
        raise ConfigError(f"{path}: [filter] belongs to revoke-tokens jobs only")
    return JobConfig(
        path=path,
        name=str(raw.get("name") or path.stem),
        kind=kind,
        source=source,
        target=target,
        options=_options(raw.get("options"), path, overrides),
        mapping=raw.get("mapping") or {},
        token_filter=token_filter,
    )


def _revoke_filter(raw: dict[str, Any], target: PortalConfig | None, path: Path) -> TokenFilter:
    if target is None:
        raise ConfigError(f"{path}: a revoke-tokens job needs a [target] table (the portal "
                          "whose tokens to revoke)")
    if target.type not in ("ckan", "portaljs", "ods"):
        raise ConfigError(f"{path}: [target] type {target.type!r} has no API tokens bulkport "
                          "can revoke (supported: ckan, portaljs, ods)")
    if not target.api_key:
        raise ConfigError(f"{path}: [target] api_key is required to list and revoke tokens")
    token_filter = parse_filter(raw.get("filter"), path)
    if target.type == "ods" and token_filter.uses_last_access:
        raise ConfigError(f"{path}: [filter] last_access_before / never_used: Opendatasoft API "
                          "keys carry no last-access date")
    return token_filter
