"""Counters kept in the database, so that every worker of ``serve --workers N`` adds to one number.

Counting a request must not cost a database write per request (on SQLite that write would queue
behind every report being stored): increments collect in the worker's memory and a background
thread adds them to the row about once a second. Reading a value first adds what this worker still
holds, so a single process always reads an exact count; other workers' increments show up within
``flush_interval`` seconds (and when they shut down, see ``AppState.close``).
"""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from iotile_cloud.server import db

REQUESTS = "requests"
ERRORS = "errors"


def _add(conn: Any, name: str, amount: int) -> None:
    """``value += amount`` for the named counter, creating its row on first use."""
    insert = db.dialect_insert(conn)(db.counters).values(name=name, value=amount)
    conn.execute(insert.on_conflict_do_update(index_elements=["name"], set_={"value": db.counters.c.value + amount}))


class SharedCounter:
    def __init__(self, engine: Engine, name: str, flush_interval: float = 1.0) -> None:
        self.engine = engine
        self.name = name
        self.flush_interval = flush_interval
        self._pending = 0
        self._lock = threading.Lock()
        # Held from taking the pending amount until it is committed, so that `value` never reads
        # the row while a background flush has taken an amount but not yet written it.
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def add(self, amount: int = 1) -> None:
        """Count in memory (cheap: called on the event loop for every request)."""
        with self._lock:
            self._pending += amount
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name=f"counter-{self.name}", daemon=True)
                self._thread.start()

    def flush(self) -> None:
        """Add what this worker holds to the shared row (one short write transaction)."""
        with self._flushing:
            with self._lock:
                amount, self._pending = self._pending, 0
            if not amount:
                return
            try:
                with self.engine.begin() as conn:
                    _add(conn, self.name, amount)
            except Exception:
                with self._lock:  # keep the count for the next attempt rather than lose it
                    self._pending += amount
                raise

    @property
    def value(self) -> int:
        self.flush()
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(db.counters.c.value).where(db.counters.c.name == self.name)).scalar()
        return int(found or 0)

    def reset(self, value: int = 0) -> None:
        with self._flushing:
            with self._lock:
                self._pending = 0
            with self.engine.begin() as conn:
                conn.execute(sa.delete(db.counters).where(db.counters.c.name == self.name))
                _add(conn, self.name, value)

    def close(self) -> None:
        """Stop the flushing thread and write what is left."""
        with self._lock:
            self._stopped = True
            thread, self._thread = self._thread, None
        self._wake.set()
        if thread is not None:
            thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self.flush_interval)
            if self._stopped:
                return
            try:
                self.flush()
            except Exception:  # the database is briefly unavailable: retry on the next tick
                continue
