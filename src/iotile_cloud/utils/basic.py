"""Time formatting helpers compatible with the IOTile Cloud API."""

from __future__ import annotations

import datetime as _dt
from typing import Any

__all__ = ["datetime_to_str", "str_to_datetime", "utc_isoformat", "iso_from_micros"]

UTC = _dt.timezone.utc


def datetime_to_str(dt: _dt.datetime) -> str:
    """``%Y-%m-%dT%H:%M:%SZ`` (aware datetimes are converted to UTC first)."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def str_to_datetime(text: str) -> _dt.datetime:
    """Parse the server's timestamps (fraction optional, ``Z`` or offset, naive = UTC).

    Returns an aware UTC datetime; raises ``ValueError`` with the offending text otherwise.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"Invalid timestamp {text!r}: expected ISO 8601 like 2024-01-01T00:00:00Z")
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    # Python 3.10's fromisoformat only takes 3 or 6 fraction digits: normalise to 6.
    if "." in raw:
        head, _, rest = raw.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        if not digits:
            raise ValueError(f"Invalid timestamp {text!r}")
        raw = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        value = _dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"Invalid timestamp {text!r}: expected ISO 8601 like 2024-01-01T00:00:00Z") from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utc_isoformat(dt: _dt.datetime) -> str:
    """ISO 8601 with ``Z``; the fraction is written only when there is one."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_from_micros(values: Any) -> list[str]:
    """ISO 8601 ``Z`` text for many UTC microsecond stamps at once (vectorised, needs numpy); the
    fraction is written only when there is one, as the server writes single stamps."""
    import numpy as np

    micros = np.asarray(values, dtype=np.int64)
    if not len(micros):
        return []
    stamps = micros.astype("datetime64[us]")
    seconds = np.char.add(np.datetime_as_string(stamps, unit="s"), "Z")
    whole = micros % 1_000_000 == 0
    if whole.all():
        return list(seconds.tolist())
    fine = np.char.add(np.datetime_as_string(stamps, unit="us"), "Z")
    return list(np.where(whole, seconds, fine).tolist())
