"""The DataPress simulator's content: datasets, teams, users and their keys, file bodies.

Datasets are stored as the JSON documents the API shows, except that a hosted file's
``url`` is left out: it is an absolute link built from the request's host when shown.
A hosted file's body lives in ``blobs`` under the resource's ``origin`` (its storage key,
new at every upload), so a PATCH that moves or drops resources never confuses bodies.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bulkport.testing.core.faults import RequestStats
from bulkport.testing.core.files import BlobStore
from bulkport.testing.core.responses import iso as iso  # re-exported: the stamp of every record

# Dataset and team ids: 5 characters (the docs show "ab12x", "20abc", "05jg5").
ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
# Resource and link ids: 3 characters from this alphabet, as documented.
ITEM_ALPHABET = "bcdefghjklmnpqrstvwxyz0123456789"
DEFAULT_MASTHEADS = {"simulator": "DataPress Simulator"}
DEFAULT_TOPICS = {"environment": "Environment", "transport": "Transport",
                  "health": "Health", "economy": "Economy", "housing": "Housing"}


@dataclass
class DataPressUser:
    """A user: numeric ``id``, ``title`` (display name), ``email``, ``admin``."""

    id: int
    title: str
    email: str
    admin: bool = False


@dataclass
class UploadSession:
    """A chunked upload between ``POST .../upload`` and ``urlComplete``.

    ``received`` maps a part number to the blob key holding that part's bytes.
    """

    uuid: str
    dataset_id: str
    user_id: int
    filename: str
    parts: int
    fields: dict[str, Any]
    received: dict[int, str] = field(default_factory=dict)


class DataPressStore:
    """A DataPress site's content.

    Attributes tests may inspect: ``datasets`` (id → stored document), ``teams`` (id →
    ``{id, title, users, site}``), ``users`` (id → :class:`DataPressUser`), ``keys`` (API
    key → user id), ``mastheads`` and ``topics`` (id → title, the site settings),
    ``uploads`` (upload uuid → :class:`UploadSession` not yet completed), ``blobs``
    (hosted file bodies by resource ``origin``) and ``stats`` (requests by label).
    """

    def __init__(self, *, site: str = "simulator", seed: int | None = None,
                 mastheads: dict[str, str] | None = None,
                 topics: dict[str, str] | None = None) -> None:
        self.site = site
        self.datasets: dict[str, dict[str, Any]] = {}
        self.teams: dict[str, dict[str, Any]] = {}
        self.users: dict[int, DataPressUser] = {}
        self.keys: dict[str, int] = {}
        self.mastheads = dict(DEFAULT_MASTHEADS if mastheads is None else mastheads)
        self.topics = dict(DEFAULT_TOPICS if topics is None else topics)
        self.uploads: dict[str, UploadSession] = {}
        self.blobs = BlobStore()
        self.stats = RequestStats()
        self._md5: dict[str, str] = {}
        self._rng = random.Random(seed)

    # -- ids

    def new_id(self, taken: Iterable[str] = ()) -> str:
        """A fresh 5-character id, unused by any dataset, team or ``taken``."""
        taken = set(taken)
        while True:
            new = "".join(self._rng.choices(ID_ALPHABET, k=5))
            if new not in self.datasets and new not in self.teams and new not in taken:
                return new

    def new_item_id(self, taken: Iterable[str]) -> str:
        """A fresh 3-character resource or link id, not in ``taken``."""
        taken = set(taken)
        while True:
            new = "".join(self._rng.choices(ITEM_ALPHABET, k=3))
            if new not in taken:
                return new

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    # -- teams and users

    def add_team(self, title: str, team_id: str | None = None) -> dict[str, Any]:
        """Create a team (``team_id`` or a fresh one) and return it."""
        team_id = team_id or self.new_id()
        team: dict[str, Any] = {"title": title, "users": [], "site": self.site, "id": team_id}
        self.teams[team_id] = team
        return team

    def add_user(self, title: str, email: str, *, admin: bool = False,
                 teams: Iterable[str] = (), key: str | None = None) -> DataPressUser:
        """Create a user, make them a member of ``teams`` and give them ``key``.

        Raises:
            KeyError: a team does not exist.
        """
        user = DataPressUser(max(self.users, default=0) + 1, title, email, admin)
        for team_id in teams:
            self.teams[team_id]["users"].append(user.id)
        self.users[user.id] = user
        if key is not None:
            self.keys[key] = user.id
        return user

    def user_for_key(self, key: str | None) -> DataPressUser | None:
        """The key's user; None for a missing or unknown key (an anonymous visitor)."""
        user_id = self.keys.get(key) if key else None
        return self.users.get(user_id) if user_id is not None else None

    def memberships(self, user: DataPressUser) -> list[str]:
        return [team_id for team_id, team in self.teams.items() if user.id in team["users"]]

    def whoami(self, user: DataPressUser) -> dict[str, Any]:
        return {"id": user.id, "title": user.title, "email": user.email, "admin": user.admin,
                "memberships": self.memberships(user)}

    # -- permissions

    def can_edit(self, user: DataPressUser | None, team_id: str) -> bool:
        """Admins edit everything; members edit their teams' datasets."""
        if user is None:
            return False
        team = self.teams.get(team_id)
        return user.admin or (team is not None and user.id in team["users"])

    def can_read(self, user: DataPressUser | None, dataset: dict[str, Any]) -> bool:
        """Public datasets are for everyone; private ones for their editors."""
        return dataset.get("sharing") != "private" or self.can_edit(user, dataset["team"])

    # -- file bodies

    def file_md5(self, origin: str) -> str | None:
        """MD5 of a hosted file (computed once by streaming, then cached)."""
        digest = self._md5.get(origin)
        if digest is None:
            blob = self.blobs.get(origin)
            if blob is None:
                return None
            md5 = hashlib.md5()
            for chunk in blob.iter_chunks():
                md5.update(chunk)
            digest = self._md5[origin] = md5.hexdigest()
        return digest

    def remember_md5(self, origin: str, digest: str) -> None:
        self._md5[origin] = digest

    def drop_file(self, origin: str) -> None:
        self.blobs.delete(origin)
        self._md5.pop(origin, None)

    def drop_unreferenced(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Delete the bodies ``before`` hosted that ``after`` no longer refers to."""
        kept = {res.get("origin") for res in after["resources"].values()}
        for res in before["resources"].values():
            origin = res.get("origin")
            if origin and origin not in kept:
                self.drop_file(origin)

    def close(self) -> None:
        """Remove the uploaded bodies from disk."""
        self.blobs.close()
