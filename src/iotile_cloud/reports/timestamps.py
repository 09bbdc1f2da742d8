"""Raw u32 reading timestamps to UTC (reports.md, "Timestamps")."""

from __future__ import annotations

import datetime as dt

__all__ = ["RTC_BIT", "UNKNOWN", "Y2K", "is_rtc", "rtc_time", "to_utc"]

RTC_BIT = 0x80000000
UNKNOWN = 0xFFFFFFFF
Y2K = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


def is_rtc(raw: int) -> bool:
    return bool(raw & RTC_BIT) and raw != UNKNOWN


def rtc_time(raw: int | None) -> dt.datetime | None:
    """The UTC time of a real-time-clock stamp (bit 31 set, not 0xFFFFFFFF); None for any other."""
    if raw is None or not is_rtc(raw):
        return None
    return Y2K + dt.timedelta(seconds=raw & 0x7FFFFFFF)


def to_utc(raw: int | None, sent_timestamp: int | None, received: dt.datetime) -> dt.datetime | None:
    """Bit 31 set: real-time clock, seconds since 2000-01-01. Else uptime: ``received - sent + raw``.

    None when the time is unknown (0xFFFFFFFF, or an uptime without a usable sent timestamp).
    """
    if raw is None or raw == UNKNOWN:
        return None
    if raw & RTC_BIT:
        return Y2K + dt.timedelta(seconds=raw & 0x7FFFFFFF)
    if sent_timestamp is None or sent_timestamp == UNKNOWN:
        return None
    return received + dt.timedelta(seconds=raw - sent_timestamp)
