"""Job files: TOML, with ``${VAR}`` read from the environment or a ``.env`` file.

Everything is checked before the first request: a bad job file is one line naming the file,
the table and the key.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from bulkport.errors import ConfigError
from bulkport.jobs.token_filter import TokenFilter, parse_filter
from bulkport.portals import registry
from bulkport.portals.base import Limit, Role
from bulkport.settings import Options, SourceSettings, TargetSettings, from_table

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
    # An empty or absent key is no key: ``api_key = "${KEY}"`` with KEY="" reads anonymously.
    values = {k: v for k, v in table.items() if not (k == "api_key" and v in ("", None))}
    values["url"] = url.rstrip("/")
    settings = portal.source_settings if side == "source" else portal.target_settings
    return from_table(settings, values, where)


def _options(table: Any, path: Path, overrides: dict[str, Any]) -> Options:
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"{path}: [options] must be a table")
    values = {**(table or {}), **{k: v for k, v in overrides.items() if v is not None}}
    return from_table(Options, values, f"{path}: [options]")


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
    source_role, target_role = KINDS[kind]
    unknown = set(raw) - {"kind", "name", "source", "target", "options", "mapping", "filter"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    source = _portal(raw.get("source"), "source", source_role, kind, path)
    target = _portal(raw.get("target"), "target", target_role, kind, path)
    options = _options(raw.get("options"), path, overrides)
    if source_role is not None and (source is None or target is None):
        raise ConfigError(f"{path}: a {kind} job needs both a [source] and a [target] table")
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
        name=str(raw.get("name") or path.stem),
        kind=kind,
        source=source,
        target=target,
        options=options,
        mapping=raw.get("mapping") or {},
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
