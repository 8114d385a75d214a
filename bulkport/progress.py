"""A job's progress bar: units done, and what the HTTP layer is waiting for.

A slow portal must look slow, not dead: the bar adds the retries so far and the longest
wait under way ("retries 12, waiting 4s on data.example.org"), or the host that has not
answered for a while, and the watchdog redraws it every second even when no unit finishes.
Each unit counted is also progress for the watchdog. The note is computed only when tqdm
draws (a few times per second at most), so the hot path pays nothing for it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

from tqdm import tqdm

from bulkport.watchdog import Activity

# Told (units done, total or None) each time a unit finishes: a script's or notebook's own
# progress display (bulkport.run(progress=...)).
listener: ContextVar[Callable[[int, int | None], None] | None] = ContextVar(
    "progress_listener", default=None)


class ProgressBar(tqdm):  # type: ignore[type-arg]  # counts units, yields nothing
    """``tqdm`` on stderr that shows ``activity``'s retries and waits.

    Args:
        activity: the run's activity (``client.activity``; None: a job run on its own,
            with no watchdog).
        progress: draw the bar at all (False: it only counts units for the watchdog).
        kwargs: tqdm's (``desc``, ``unit``, ``total``...).
    """

    def __init__(self, activity: Activity | None, *, progress: bool, **kwargs: Any) -> None:
        self._activity = activity or Activity()
        self._done = 0
        super().__init__(disable=not progress, file=sys.stderr, dynamic_ncols=True, **kwargs)
        if not self.disable:
            self._activity.show(self.refresh)

    def update(self, n: float | None = 1) -> bool | None:
        self._activity.progressed()  # a unit finished
        told = listener.get()
        if told is not None:
            self._done += int(n or 0)  # tqdm counts nothing when it draws nothing
            told(self._done, int(self.total) if self.total is not None else None)
        return super().update(n)

    @property
    def format_dict(self) -> MutableMapping[str, Any]:
        found = super().format_dict
        note = self._activity.summary()
        if note:
            found["postfix"] = f"{found['postfix']}, {note}" if found.get("postfix") else note
        return found

    def close(self) -> None:
        self._activity.hide(self.refresh)
        super().close()
