"""The FlexibleDictionaryReport (``v100``): msgpack (``.mp``) or JSON (``.json``), readings and events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import msgpack
import orjson

from iotile_cloud.reports.binary import ReportError
from iotile_cloud.reports.timestamps import rtc_time
from iotile_cloud.utils.basic import str_to_datetime

__all__ = ["DictReading", "DictEvent", "DictionaryReport", "MAX_CONTAINERS"]

# A map or array costs one byte on the wire but ~60-100 bytes in Python (and as much again in the
# plain copy _text makes): a report may hold at most MAX_CONTAINERS of them (as many as the largest
# binary report has readings), so 16 MiB of empty ``[]`` is refused at ~1M containers, not built
# into gigabytes.
MAX_CONTAINERS = 1 << 20


def _too_many_containers() -> ReportError:
    return ReportError(f"The report holds more than {MAX_CONTAINERS} maps and arrays")


class _Budget:
    """msgpack hooks counting the maps and arrays as they complete: the unpacking stops at the limit."""

    def __init__(self) -> None:
        self.left = MAX_CONTAINERS

    def spend(self, value: Any) -> Any:
        self.left -= 1
        if self.left < 0:
            raise _too_many_containers()
        return value


@dataclass(slots=True)
class DictReading:
    stream: int
    reading_id: int
    raw_timestamp: int | None
    timestamp: dt.datetime | None
    value: int | float


@dataclass(slots=True)
class DictEvent:
    stream: int
    reading_id: int
    raw_timestamp: int | None
    timestamp: dt.datetime | None
    extra_data: dict[str, Any] = field(default_factory=dict)
    data: Any = None


MAX_DEPTH = 200  # nesting levels a report may have (orjson writes at most 254; real reports use < 10)
_INT64 = 1 << 63


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    if key is None or isinstance(key, (bool, int, float)):
        return orjson.dumps(key).decode()  # as JSON names it: 1 -> "1", True -> "true", None -> "null"
    raise ReportError(f"A dictionary report key must be text or a number, got {type(key).__name__}")


def _text(value: Any, depth: int = 0) -> Any:
    """The decoded map as plain JSON data: text for the bytes of msgpack written by Python 2, text keys,
    no msgpack extension types, at most MAX_DEPTH levels. Lists and maps are fixed in place (a copy
    of a 16 MiB report would double what decoding it takes)."""
    if isinstance(value, (str, int, float)) or value is None:  # bool is an int
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if depth >= MAX_DEPTH:
        raise ReportError(f"A dictionary report may nest at most {MAX_DEPTH} levels")
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            value = {_key(k): v for k, v in value.items()}
        for k, v in value.items():
            fixed = _text(v, depth + 1)
            if fixed is not v:
                value[k] = fixed
        return value
    if isinstance(value, list):
        for index, v in enumerate(value):
            fixed = _text(v, depth + 1)
            if fixed is not v:
                value[index] = fixed
        return value
    raise ReportError(f"A dictionary report holds JSON data only, not a msgpack {type(value).__name__}")


def _stream(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ReportError(f"{where}: stream {value!r} is not a number or a hex string")
    try:
        number = int(value, 16) if isinstance(value, str) else int(value)
    except (ValueError, OverflowError):
        raise ReportError(f"{where}: stream {value!r} is not a number or a hex string") from None
    if not 0 <= number <= 0xFFFF or (number != value and not isinstance(value, str)):
        raise ReportError(f"{where}: stream {value!r} is not a 16-bit stream id")
    return number


def _finite(value: Any) -> bool:
    """A number that fits a signed 64-bit integer column (what the cloud stores), NaN and infinities not."""
    return -_INT64 <= value < _INT64  # False for NaN too


def _int(value: Any, where: str, name: str, default: int | None = None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
        raise ReportError(f"{where}: {name} {value!r} is not a 64-bit integer")
    return int(value)


def _items(raw: dict[str, Any], name: str) -> list[Any]:
    items = raw.get(name)
    if items is None:
        return []
    if not isinstance(items, list):
        raise ReportError(f"{name}: expected a list, got {type(items).__name__}")
    return items


def _time(value: Any, where: str) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        return str_to_datetime(str(value))  # without "Z" it is UTC
    except ValueError:
        raise ReportError(f"{where}: timestamp {value!r} is not ISO 8601") from None


@dataclass
class DictionaryReport:
    device: int
    streamer_index: int = 0
    streamer_selector: int = 0
    report_id: int = 0
    sent_timestamp: int | None = None
    lowest_id: int = 0
    highest_id: int = 0
    readings: list[DictReading] = field(default_factory=list)
    events: list[DictEvent] = field(default_factory=list)

    format = "v100"
    signature_flags = None
    verified = True

    def __post_init__(self) -> None:
        # Built from items without the ids given: the lowest and highest non-zero reading id over the
        # readings and the events (as coretools' FlexibleDictionaryReport.FromReadings does).
        if not (self.lowest_id or self.highest_id):
            ids = [r.reading_id for r in self.readings if r.reading_id]
            ids += [e.reading_id for e in self.events if e.reading_id]
            if ids:
                self.lowest_id, self.highest_id = min(ids), max(ids)

    @classmethod
    def from_dict(cls, raw: Any) -> DictionaryReport:
        raw = _text(raw)
        if not isinstance(raw, dict):
            raise ReportError("A dictionary report must be a map (JSON object)")
        if raw.get("format") != "v100":
            raise ReportError(f"Unsupported dictionary report format: {raw.get('format')!r} (expected 'v100')")
        device = _int(raw.get("device"), "report", "device")
        if device is None or device < 0:
            raise ReportError("A dictionary report needs its 'device' (the int uuid)")
        readings, events = [], []
        for n, item in enumerate(_items(raw, "data")):
            where = f"data[{n}]"
            if not isinstance(item, dict):
                raise ReportError(f"{where}: expected an object")
            value = item.get("value")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
                raise ReportError(f"{where}: value {value!r} is not a number (64-bit integer or finite float)")
            readings.append(
                DictReading(
                    stream=_stream(item.get("stream"), where),
                    reading_id=_int(item.get("streamer_local_id"), where, "streamer_local_id", 0) or 0,
                    raw_timestamp=_int(item.get("device_timestamp"), where, "device_timestamp"),
                    timestamp=_time(item.get("timestamp"), where),
                    value=value,
                )
            )
        for n, item in enumerate(_items(raw, "events")):
            where = f"events[{n}]"
            if not isinstance(item, dict):
                raise ReportError(f"{where}: expected an object")
            extra = item.get("extra_data") or {}
            if not isinstance(extra, dict):
                raise ReportError(f"{where}: extra_data must be an object")
            events.append(
                DictEvent(
                    stream=_stream(item.get("stream"), where),
                    reading_id=_int(item.get("streamer_local_id"), where, "streamer_local_id", 0) or 0,
                    raw_timestamp=_int(item.get("device_timestamp"), where, "device_timestamp"),
                    timestamp=_time(item.get("timestamp"), where),
                    extra_data=extra,
                    data=item.get("data"),
                )
            )
        report = cls(
            device=device,
            streamer_index=_int(raw.get("streamer_index"), "report", "streamer_index", 0) or 0,
            streamer_selector=_int(raw.get("streamer_selector"), "report", "streamer_selector", 0) or 0,
            report_id=_int(raw.get("incremental_id"), "report", "incremental_id", 0) or 0,
            sent_timestamp=_int(raw.get("device_sent_timestamp"), "report", "device_sent_timestamp"),
        )
        # What the report says, even 0/0 with items (not recomputed as for a report built from items).
        report.lowest_id = _int(raw.get("lowest_id"), "report", "lowest_id", 0) or 0
        report.highest_id = _int(raw.get("highest_id"), "report", "highest_id", 0) or 0
        report.readings, report.events = readings, events
        return report

    @classmethod
    def decode_msgpack(cls, data: bytes) -> DictionaryReport:
        budget = _Budget()
        try:
            raw = msgpack.unpackb(
                data, raw=True, strict_map_key=False, object_hook=budget.spend, list_hook=budget.spend
            )
        except ReportError:
            raise
        except (ValueError, TypeError, msgpack.UnpackException) as error:
            # TypeError: a map or list used as a map key (unhashable)
            raise ReportError(f"Not a msgpack report: {error or type(error).__name__}") from None
        return cls.from_dict(raw)

    @classmethod
    def decode_json(cls, data: bytes) -> DictionaryReport:
        # Every container starts with one of these bytes (strings may hold some too: an upper bound).
        if data.count(b"{") + data.count(b"[") > MAX_CONTAINERS:
            raise _too_many_containers()
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise ReportError(f"Not a JSON report: {error}") from None
        return cls.from_dict(raw)

    def as_dict(self) -> dict[str, Any]:
        """The report as coretools writes it: same keys in the same order, so that the msgpack bytes of
        the same report are identical. Reading times are naive ISO in UTC ("2019-01-05T10:40:00",
        microseconds only when there are some), event times the same with "Z". A reading without a
        time but with a real-time-clock stamp gets that time written, as coretools' readings do."""

        def naive(value: dt.datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is not None:
                value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
            return value.isoformat()

        return {
            "format": "v100",
            "device": self.device,
            "streamer_index": self.streamer_index,
            "streamer_selector": self.streamer_selector,
            "incremental_id": self.report_id,
            "lowest_id": self.lowest_id,
            "highest_id": self.highest_id,
            "device_sent_timestamp": self.sent_timestamp,
            "events": [
                {
                    "stream": e.stream,
                    "device_timestamp": e.raw_timestamp,
                    "streamer_local_id": e.reading_id,
                    "timestamp": None if e.timestamp is None else f"{naive(e.timestamp)}Z",
                    "extra_data": e.extra_data,
                    "data": e.data,
                }
                for e in self.events
            ],
            "data": [
                {
                    "stream": r.stream,
                    "device_timestamp": r.raw_timestamp,
                    "streamer_local_id": r.reading_id,
                    "timestamp": naive(r.timestamp if r.timestamp is not None else rtc_time(r.raw_timestamp)),
                    "value": r.value,
                }
                for r in self.readings
            ],
        }

    def encode_msgpack(self) -> bytes:
        return bytes(msgpack.packb(self.as_dict(), use_bin_type=True))

    def encode_json(self) -> bytes:
        return orjson.dumps(self.as_dict())
