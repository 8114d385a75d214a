"""Every portal type bulkport knows: a new portal is one package plus one line here.

Jobs never name a portal type: they ask the registry for the portal a ``type`` names, for
the role the job needs (:class:`~bulkport.portals.base.Role`), and open its adapters here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

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


F = TypeVar("F", bound=Callable[..., Any])


def _needed(factory: F | None, settings: PortalSettings, role: Role) -> F:
    """``factory``, or the ConfigError of a portal that does not play ``role``."""
    if factory is None:
        raise ConfigError(f"{of(settings).title} {settings.url} cannot be a {role.value} "
                          f"(supported: {', '.join(names(role))})")
    return factory


def open_source(settings: SourceSettings, client: HttpClient, options: Options) -> Source:
    return _needed(of(settings).source, settings, Role.SOURCE)(settings, client, options)


def open_mirror_source(settings: SourceSettings, client: HttpClient,
                       options: Options) -> MirrorSource:
    factory = _needed(of(settings).mirror_source, settings, Role.MIRROR_SOURCE)
    return factory(settings, client, options)


def open_target(settings: TargetSettings, client: HttpClient, options: Options,
                journal: Journal, report: Report) -> Target:
    factory = _needed(of(settings).target, settings, Role.TARGET)
    return factory(settings, client, options, journal, report)


def open_mirror_target(settings: TargetSettings, client: HttpClient, options: Options,
                       journal: Journal, report: Report) -> MirrorTarget:
    factory = _needed(of(settings).mirror_target, settings, Role.MIRROR_TARGET)
    return factory(settings, client, options, journal, report)


def open_tokens(settings: TargetSettings, client: HttpClient) -> TokenStore:
    return _needed(of(settings).tokens, settings, Role.TOKENS)(settings, client)
