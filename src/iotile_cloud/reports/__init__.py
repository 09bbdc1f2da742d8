"""Streamer reports: encode, sign, verify, parse (binary formats 0, 1, 3 and dictionary ``v100``).

One codec for the client, the CLI and the server::

    report = decode_report(open("report.bin", "rb").read(), "report.bin")
    for reading in report.readings: ...
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Union

from iotile_cloud.reports.binary import (
    MAX_REPORT_LENGTH,
    BroadcastReport,
    IndividualReadingReport,
    Reading,
    ReportError,
    SignedListReport,
    decode_binary,
    password_key,
    report_key,
    split_reports,
)
from iotile_cloud.reports.dictionary import DictEvent, DictionaryReport, DictReading
from iotile_cloud.reports.timestamps import to_utc

__all__ = [
    "AnyReport",
    "BroadcastReport",
    "DictEvent",
    "DictReading",
    "DictionaryReport",
    "IndividualReadingReport",
    "MAX_REPORT_LENGTH",
    "Reading",
    "ReportError",
    "SignedListReport",
    "decode_binary",
    "decode_report",
    "report_kind",
    "password_key",
    "report_key",
    "split_reports",
    "to_utc",
]

AnyReport = Union[SignedListReport, IndividualReadingReport, BroadcastReport, DictionaryReport]
EXTENSIONS = {"": "binary", ".bin": "binary", ".json": "json", ".mp": "msgpack"}


def report_kind(filename: str | None) -> str:
    """``binary``, ``json`` or ``msgpack`` from a file name; ReportError for other extensions."""
    suffix = PurePath(filename or "").suffix.lower()
    if suffix not in EXTENSIONS:
        raise ReportError("Streamer Report file extension not supported. Expected: .bin, .json or .mp")
    return EXTENSIONS[suffix]


def decode_report(data: bytes, filename: str | None = None, key: bytes | None = None) -> AnyReport:
    """Decode a report; the file name's extension picks the parser (none or .bin: binary)."""
    kind = report_kind(filename)
    if kind == "json":
        return DictionaryReport.decode_json(data)
    if kind == "msgpack":
        return DictionaryReport.decode_msgpack(data)
    return decode_binary(data, key)
