"""Background compaction: every server process merges small segments a few seconds after they land.

Writes store each batch as it comes (a single POST is one small segment), so a write never reads
and rewrites stored points; this pass merges the small ones (``points.compact``). Several processes
over one database may run it at once: each stream is compacted under a lock (SQLite: the write
transaction; PostgreSQL: an advisory lock), and a segment changed meanwhile is left for the next pass.
The same thread now and then removes the files of deleted records (``housekeeping.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import Engine

from iotile_cloud.server import housekeeping, points

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 2.0


SWEEP_SECONDS = 600.0  # how often files of deleted records are looked for (housekeeping.py)


class Compactor:
    """A daemon thread running ``points.compact_all`` every ``interval`` seconds until stopped, and
    with a data directory, ``housekeeping.sweep`` every SWEEP_SECONDS."""

    def __init__(self, engine: Engine, interval: float = INTERVAL_SECONDS, data_dir: Path | None = None) -> None:
        self.engine = engine
        self.interval = interval
        self.data_dir = data_dir
        self._next_sweep = time.monotonic() + SWEEP_SECONDS
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pass = threading.RLock()  # held by each pass, and by paused() (which may nest)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="segment-compaction", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No pass runs inside this block (tests that look at the segment layout)."""
        with self._pass:
            yield

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self._pass:
                    points.compact_all(self.engine)
                if self.data_dir is not None and time.monotonic() >= self._next_sweep:
                    self._next_sweep = time.monotonic() + SWEEP_SECONDS
                    housekeeping.sweep(self.engine, self.data_dir)
            except Exception:  # a busy database or a dropped connection: try again next time
                log.warning("segment compaction failed; retrying in %.0f s", self.interval, exc_info=True)
