"""Which source record's copy each ``dataset_id`` on an Opendatasoft domain holds.

A ``dataset_id`` is the domain's unique, human-chosen key, and two source records can map to
the same one (see :func:`bulkport.portals.ods.target.dataset_id_variant`). The target keeps
who took which in the state store, never in memory: one journal entry per source record
(``ID_ENTRY``, keyed by the source id, with the ``dataset_id`` as its second key), plus what
a mirror holds (its own table, which outlives the journal of a finished run).
"""

from __future__ import annotations

import zlib

import anyio

from bulkport.checkpoint import Journal
from bulkport.store import transaction

ID_ENTRY = "ods_dataset_id"  # journal: source id → the dataset_id chosen on the domain
LOCKS = 256  # claims of different dataset_ids that share a lock only wait for each other


class DatasetIds:
    """The ``dataset_id`` each source record has taken, and the record each one holds."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        # Entries imported from an older journal lack their second key until given it.
        journal.index_by(ID_ENTRY, "dataset_id")
        # A fixed set of locks, by hash, rather than one per dataset_id ever claimed.
        self._locks = [anyio.Lock() for _ in range(LOCKS)]

    def lock(self, dataset_id: str) -> anyio.Lock:
        """The lock a claim of ``dataset_id`` is made under (one claim at a time)."""
        return self._locks[zlib.crc32(dataset_id.encode()) % LOCKS]

    def of(self, source_id: str) -> str | None:
        """The ``dataset_id`` ``source_id`` took in an earlier run or this one (None: none
        yet). The journal says it first; a mirror's state says it for finished runs."""
        entry = self.journal.get(ID_ENTRY, source_id)
        if entry is not None:
            value = entry.get("dataset_id")
            return value if isinstance(value, str) else None  # None: its claim was lost
        return self.journal.held(source_id)

    def holder(self, dataset_id: str) -> str | None:
        """The source id whose copy ``dataset_id`` holds, as far as the state knows."""
        return self.journal.find(ID_ENTRY, dataset_id) or self.journal.holder(dataset_id)

    def claim(self, source_id: str, dataset_id: str) -> None:
        """Record that ``dataset_id`` holds the copy of ``source_id`` (it made it, or the
        copy's mark says so). Another record that claimed it before lost it (its copy was
        removed from the domain since): that record forgets it, so that one ``dataset_id``
        has one holder, and takes a ``dataset_id`` of its own when it comes back."""
        entry = self.journal.get(ID_ENTRY, source_id)
        if (entry is not None and entry.get("dataset_id") == dataset_id
                and self.journal.find(ID_ENTRY, dataset_id) == source_id):
            return
        with transaction(self.journal.store.db):
            while (other := self.journal.find(ID_ENTRY, dataset_id)) not in (None, source_id):
                self.journal.record(ID_ENTRY, str(other), dataset_id=None)
            self.journal.record(ID_ENTRY, source_id, ref=dataset_id, dataset_id=dataset_id)
