"""Files of records that are gone: event attachments and raw report copies left on disk.

An event's data file (``<data dir>/events/<event id>.<ext>``) and the raw copy of an uploaded report
(``<data dir>/reports/<report record id>``) are written in their record's transaction (gone again if
it rolls back), but rows also go away by cascade: a stream, device or project deleted, a device reset
or trimmed. Rather than track every cascade, each server process sweeps now and then: a file whose
record no longer exists, and that is older than any open transaction could be, is removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from iotile_cloud.server import db

log = logging.getLogger(__name__)

MIN_AGE_SECONDS = 3600.0  # younger files may belong to a transaction that has not committed yet
BATCH = 500


def _event_id(name: str) -> Any:
    head = name.split(".", 1)[0]
    return int(head) if head.isdigit() and len(head) < 19 else None


def _report_id(name: str) -> Any:
    return name if len(name) == 36 and name.count("-") == 4 else None


# folder under the data directory -> (the file's record id from its name, the id column)
OWNED_FILES: dict[str, tuple[Callable[[str], Any], sa.Column[Any]]] = {
    "events": (_event_id, db.events.c.id),
    "reports": (_report_id, db.streamer_reports.c.id),
}


def sweep(engine: Engine, data_dir: Path, min_age: float = MIN_AGE_SECONDS) -> int:
    """Remove the files whose record is gone; returns how many."""
    removed = 0
    cutoff = time.time() - min_age
    for folder, (record_id, column) in OWNED_FILES.items():
        files: dict[Any, list[Path]] = {}
        for path in _old_files(data_dir / folder, cutoff):
            key = record_id(path.name)
            if key is not None:
                files.setdefault(key, []).append(path)
        keys = list(files)
        for i in range(0, len(keys), BATCH):
            batch = keys[i : i + BATCH]
            with db.reading(engine) as conn:
                kept = set(conn.execute(sa.select(column).where(column.in_(batch))).scalars())
            for key in batch:
                if key not in kept:
                    removed += _remove(files[key])
    return removed


def _old_files(folder: Path, cutoff: float) -> Iterable[Path]:
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return []
    old = []
    for path in entries:
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                old.append(path)
        except FileNotFoundError:  # removed meanwhile (another process swept it)
            continue
    return old


def _remove(paths: list[Path]) -> int:
    removed = 0
    for path in paths:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed
