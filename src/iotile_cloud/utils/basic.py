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
    """ISO 8601 ``Z`` text for many UTC microsecond stamps at once; the fraction is written only when
    there is one, as for single stamps. Vectorised (needs numpy): the digits are computed as bytes."""
    import numpy as np

    micros = np.asarray(values, dtype=np.int64)
    n = len(micros)
    if not n:
        return []
    seconds, fraction = np.divmod(micros, 1_000_000)
    days, second_of_day = np.divmod(seconds, 86400)
    first = int(days.min())
    span = int(days.max()) - first + 1
    if span <= 4 * n:  # the usual case: a table of every day in the range
        table = np.arange(first, first + span).astype("datetime64[D]")
        which = days - first
    else:
        table, which = np.unique(days, return_inverse=True)
        table = table.astype("datetime64[D]")
    dates = np.datetime_as_string(table).astype("S10")
    fractional = fraction != 0
    width = 27 if fractional.any() else 20
    out = np.zeros((n, width), dtype=np.uint8)
    out[:, :10] = dates.view(np.uint8).reshape(-1, 10)[which]
    hours, rest = np.divmod(second_of_day, 3600)
    minutes, secs = np.divmod(rest, 60)
    for column, value in ((11, hours), (14, minutes), (17, secs)):
        out[:, column] = 48 + value // 10
        out[:, column + 1] = 48 + value % 10
    out[:, 10], out[:, 13], out[:, 16] = ord("T"), ord(":"), ord(":")
    out[:, 19] = ord("Z")
    if width == 27:
        rows = np.nonzero(fractional)[0]
        out[rows, 19] = ord(".")
        for position in range(6):
            out[rows, 20 + position] = 48 + (fraction[rows] // 10 ** (5 - position)) % 10
        out[rows, 26] = ord("Z")
    if width == 27 and not fractional.all():
        return _strings_from_rows(out, np.where(fractional, 27, 20))
    return _strings_from_rows(out)


def _strings_from_rows(rows: Any, lengths: Any = None) -> list[str]:
    """One ASCII string per row of a ``(n, width)`` uint8 array: the first ``lengths[i]`` bytes of
    row ``i`` (the whole rows when ``lengths`` is None).

    The rows go out as one text split at newlines: one C-level pass makes the strings (about 1.5x
    faster than decoding each row, which dominates building big pages)."""
    import numpy as np

    n, width = rows.shape
    if n == 0:
        return []
    lined = np.empty((n, width + 1), dtype=np.uint8)
    lined[:, :width] = rows
    lined[:, width] = ord("\n")
    if lengths is None:
        text = lined.tobytes().decode("ascii")
    else:
        # Keep each row's first lengths[i] bytes and its newline.
        columns = np.arange(width + 1)
        keep = (columns < np.asarray(lengths)[:, None]) | (columns == width)
        text = lined[keep].tobytes().decode("ascii")
    out = text.split("\n")
    out.pop()  # after the last newline
    return out
