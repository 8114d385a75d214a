"""Every portal type bulkport knows: a new portal is one package plus one line here.

Jobs never name a portal type: they ask the registry for the portal a ``type`` names, for
the role the job needs (:class:`~bulkport.portals.base.Role`), and open its adapters here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bulkport.checkpoint import Journal
from bulkport.errors import ConfigError
from bulkport.http import HttpClient
from bulkport.portals import ckan, datapress, ods
from bulkport.portals.base import (
    Limit,
    MirrorSource,
    MirrorTarget,
    Portal,
    Role,
    Source,
    Target,
    TokenStore,
)
from bulkport.report import Report
from bulkport.settings import Options, PortalSettings, SourceSettings, TargetSettings

AnyPortal = Portal[Any, Any]

_PORTALS: dict[str, AnyPortal] = {
    portal.name: portal for portal in (*ckan.PORTALS, *ods.PORTALS, *datapress.PORTALS)
}


def names(role: Role | None = None) -> list[str]:
    """The type names, in registration order (of those that play ``role``)."""
    return [name for name, portal in _PORTALS.items() if role is None or role in portal.roles]


def find(name: object, where: str) -> AnyPortal:
    """The portal a ``type`` value names.

    Raises:
        ConfigError: no such type; the message lists the known ones.
    """
    portal = _PORTALS.get(name) if isinstance(name, str) else None
    if portal is None:
        raise ConfigError(f"{where} type must be one of {', '.join(names())}, got {name!r}")
    return portal


def require(portal: AnyPortal, role: Role, where: str, *, why: str = "") -> None:
    """Raise a ConfigError unless ``portal`` plays ``role`` (``why``: what needs it)."""
    if role not in portal.roles:
        raise ConfigError(f"{where} type {portal.name!r} cannot be a {role.value}{why} "
                          f"(supported: {', '.join(names(role))})")


def limit(portal: AnyPortal, what: Limit) -> str | None:
    """Why ``portal`` cannot do ``what``, or None when it can."""
    return portal.limits.get(what)


@contextmanager
def registered(portal: AnyPortal) -> Iterator[AnyPortal]:
    """``portal`` known to the registry for the duration of the block (plugins, tests)."""
    if portal.name in _PORTALS:
        raise ValueError(f"portal type {portal.name!r} is already registered")
    _PORTALS[portal.name] = portal
    try:
        yield portal
    finally:
        del _PORTALS[portal.name]


def of(settings: PortalSettings) -> AnyPortal:
    """The portal a settings table was built for."""
    return _PORTALS[settings.type]


def _missing(settings: PortalSettings, role: Role) -> ConfigError:
    return ConfigError(f"{of(settings).title} {settings.url} cannot be a {role.value} "
                       f"(supported: {', '.join(names(role))})")


def open_source(settings: SourceSettings, client: HttpClient, options: Options) -> Source:
    factory = of(settings).source
    if factory is None:
        raise _missing(settings, Role.SOURCE)
    return factory(settings, client, options)


def open_mirror_source(settings: SourceSettings, client: HttpClient,
                       options: Options) -> MirrorSource:
    factory = of(settings).mirror_source
    if factory is None:
        raise _missing(settings, Role.MIRROR_SOURCE)
    return factory(settings, client, options)


def open_target(settings: TargetSettings, client: HttpClient, options: Options,
                journal: Journal, report: Report) -> Target:
    factory = of(settings).target
    if factory is None:
        raise _missing(settings, Role.TARGET)
    return factory(settings, client, options, journal, report)


def open_mirror_target(settings: TargetSettings, client: HttpClient, options: Options,
                       journal: Journal, report: Report) -> MirrorTarget:
    factory = of(settings).mirror_target
    if factory is None:
        raise _missing(settings, Role.MIRROR_TARGET)
    return factory(settings, client, options, journal, report)


def open_tokens(settings: TargetSettings, client: HttpClient) -> TokenStore:
    factory = of(settings).tokens
    if factory is None:
        raise _missing(settings, Role.TOKENS)
    return factory(settings, client)
