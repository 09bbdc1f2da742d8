"""Binary report formats: IndividualReadingReport (0), SignedListReport (1), BroadcastReport (3).

All integers little-endian; layouts and signatures as in ``reports.md``. Decoding validates
everything and raises :class:`ReportError` with the reason; an unverified signed report exposes
no readings.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "ReportError",
    "Reading",
    "IndividualReadingReport",
    "SignedListReport",
    "BroadcastReport",
    "split_reports",
    "decode_binary",
    "report_key",
    "password_key",
    "MAX_REPORT_LENGTH",
    "SIGNATURE_HASH",
    "SIGNATURE_USER_KEY",
    "SIGNATURE_DEVICE_KEY",
    "REBOOT_STREAM",
]

MAX_REPORT_LENGTH = 16 * 1024 * 1024
SIGNATURE_HASH, SIGNATURE_USER_KEY, SIGNATURE_DEVICE_KEY = 0, 1, 2
REBOOT_STREAM = 0x5C00  # the system stream a device writes when it boots (uptime stamps restart at 0)
_HEADER = struct.Struct("<BBHLLLBBH")  # format, len lo, len hi, uuid, report id, sent, flags, index, selector
_READING = struct.Struct("<HHLLL")  # stream, reserved, reading id, raw timestamp, value
_READING_FIELDS = struct.Struct("<H2xLLL")  # the same, skipping the reserved bytes
_FOOTER = struct.Struct("<LL16s")
_HEADER_SIZE, _FOOTER_SIZE, _READING_SIZE = 20, 24, 16


class ReportError(ValueError):
    """A report could not be decoded or verified; the message says why."""


class Reading(NamedTuple):
    """One reading: 16 bits of stream, the reading id, the raw u32 timestamp and the raw u32 value."""

    stream: int
    reading_id: int
    raw_timestamp: int
    value: int

    @property
    def is_system(self) -> bool:
        return bool(self.stream & 0x0800)


class ReadingList(Sequence[Reading]):
    """Readings decoded from a report body on first use (ingest reads the bytes as arrays instead)."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._items: list[Reading] | None = None

    def _decoded(self) -> list[Reading]:
        if self._items is None:
            # Thousands of small acyclic tuples: collecting garbage meanwhile only costs time.
            enabled = gc.isenabled()
            gc.disable()
            try:
                self._items = list(map(Reading._make, _READING_FIELDS.iter_unpack(self._body)))
            finally:
                if enabled:
                    gc.enable()
        return self._items

    def __len__(self) -> int:
        return len(self._body) // _READING_SIZE

    def __getitem__(self, index: Any) -> Any:
        return self._decoded()[index]

    def __iter__(self) -> Iterator[Reading]:
        return iter(self._decoded())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, Sequence)):
            return self._decoded() == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return repr(self._decoded())


def report_key(root_key: bytes, report_id: int, sent_timestamp: int) -> bytes:
    """HMAC-SHA256(root key, u32(2) || u32(report id) || u32(sent timestamp))."""
    if len(root_key) != 32:
        raise ReportError(f"A report signing key must be 32 bytes, got {len(root_key)}")
    return hmac.new(root_key, struct.pack("<LLL", 2, report_id, sent_timestamp), hashlib.sha256).digest()


def password_key(password: str) -> bytes:
    """The 32-byte user key derived from a password (PBKDF2-HMAC-SHA256, salt b'salt', 100000 rounds)."""
    return hashlib.pbkdf2_hmac("sha256", password.encode(), b"salt", 100000, 32)


def _ctr(key: bytes, data: bytes) -> bytes:
    # AES-128-CTR: the counter block is a 128-bit big-endian integer starting at 1, no nonce.
    cipher = Cipher(algorithms.AES(key[:16]), modes.CTR((1).to_bytes(16, "big")))
    encryptor = cipher.encryptor()
    return encryptor.update(data) + encryptor.finalize()


def _signature(signed: bytes, flags: int, key: bytes | None, report_id: int, sent: int) -> bytes:
    digest = hashlib.sha256(signed).digest()
    if flags == SIGNATURE_HASH:
        return digest[:16]
    if key is None:
        raise ReportError(f"Report signed with flags {flags} needs a key")
    return hmac.new(report_key(key, report_id, sent), digest, hashlib.sha256).digest()[:16]


@dataclass
class SignedListReport:
    """The report format the cloud stores (format 1)."""

    device: int
    report_id: int
    sent_timestamp: int
    readings: list[Reading] = field(default_factory=list)
    streamer_index: int = 0
    streamer_selector: int = 0xD7FF
    signature_flags: int = SIGNATURE_HASH
    verified: bool | None = None
    lowest_id: int = 0
    highest_id: int = 0
    signature: bytes = b""
    raw: bytes | None = None
    _body: bytes | None = field(default=None, repr=False, compare=False)

    format = 1

    def __post_init__(self) -> None:
        if len(self.readings) and not (self.lowest_id or self.highest_id):
            ids = [r.reading_id for r in self.readings if r.reading_id]
            self.lowest_id, self.highest_id = (min(ids), max(ids)) if ids else (0, 0)

    def encode(self, key: bytes | None = None) -> bytes:
        """The report's bytes; ``key`` (32 bytes) is needed for flags 1 and 2."""
        length = _HEADER_SIZE + _READING_SIZE * len(self.readings) + _FOOTER_SIZE
        if length > MAX_REPORT_LENGTH:
            raise ReportError(f"Report too long: {length} bytes (at most {MAX_REPORT_LENGTH})")
        header = _HEADER.pack(
            1,
            length & 0xFF,
            length >> 8,
            self.device,
            self.report_id,
            self.sent_timestamp,
            self.signature_flags,
            self.streamer_index,
            self.streamer_selector,
        )
        body = b"".join(_READING.pack(r.stream, 0, r.reading_id, r.raw_timestamp, r.value) for r in self.readings)
        if self.signature_flags != SIGNATURE_HASH:
            if key is None:
                raise ReportError("A signed report (flags 1 or 2) needs the 32-byte key to encode")
            body = _ctr(report_key(key, self.report_id, self.sent_timestamp), body)
        signed = header + body + struct.pack("<LL", self.lowest_id, self.highest_id)
        return signed + _signature(signed, self.signature_flags, key, self.report_id, self.sent_timestamp)

    @classmethod
    def decode(cls, data: bytes, key: bytes | None = None) -> SignedListReport:
        """Parse and verify. Flags 0 must hash right; flags 1/2 need ``key`` to show readings."""
        data = bytes(data)
        if len(data) < _HEADER_SIZE + _FOOTER_SIZE:
            raise ReportError(f"Report too short: {len(data)} bytes (at least 44)")
        fmt, len_lo, len_hi, device, report_id, sent, flags, index, selector = _HEADER.unpack_from(data)
        if fmt != 1:
            raise ReportError(f"Unsupported Report Format: {fmt}")
        length = len_lo | (len_hi << 8)
        if length != len(data):
            raise ReportError(f"Invalid report length: the header says {length} bytes, the file has {len(data)}")
        if (length - _HEADER_SIZE - _FOOTER_SIZE) % _READING_SIZE:
            raise ReportError(f"Invalid report length {length}: readings must be 16 bytes each")
        if flags not in (SIGNATURE_HASH, SIGNATURE_USER_KEY, SIGNATURE_DEVICE_KEY):
            raise ReportError(f"Unknown signature flags: {flags}")
        lowest, highest, signature = _FOOTER.unpack_from(data, length - _FOOTER_SIZE)
        signed = data[:-16]
        report = cls(
            device=device,
            report_id=report_id,
            sent_timestamp=sent,
            streamer_index=index,
            streamer_selector=selector,
            signature_flags=flags,
            lowest_id=lowest,
            highest_id=highest,
            signature=signature,
            raw=data,
        )
        if flags != SIGNATURE_HASH and key is None:
            report.verified = None  # cannot tell without the key: no readings exposed
            return report
        expected = _signature(signed, flags, key, report_id, sent)
        if not hmac.compare_digest(expected, signature):
            raise ReportError(
                "Invalid Hash" if flags == SIGNATURE_HASH else "Invalid signature: wrong key or corrupted report"
            )
        body = data[_HEADER_SIZE : length - _FOOTER_SIZE]
        if flags != SIGNATURE_HASH:
            assert key is not None
            body = _ctr(report_key(key, report_id, sent), body)
        report.readings = ReadingList(body)  # type: ignore[assignment]
        report.verified = True
        report._body = body
        return report

    def readings_array(self) -> Any:
        """The readings as a numpy structured array (fields stream, reserved, reading_id,
        raw_timestamp, value), straight from the decoded bytes when there are some."""
        import numpy as np

        dtype = np.dtype(
            [("stream", "<u2"), ("reserved", "<u2"), ("reading_id", "<u4"), ("raw_timestamp", "<u4"), ("value", "<u4")]
        )
        if self._body is not None and len(self._body) == 16 * len(self.readings):
            return np.frombuffer(self._body, dtype=dtype)
        body = b"".join(_READING.pack(r.stream, 0, r.reading_id, r.raw_timestamp, r.value) for r in self.readings)
        return np.frombuffer(body, dtype=dtype)


@dataclass
class IndividualReadingReport:
    """A single realtime reading (format 0, 20 bytes, unsigned, no reading id)."""

    device: int
    sent_timestamp: int
    reading: Reading

    format = 0
    verified = True

    def encode(self) -> bytes:
        r = self.reading
        return struct.pack("<BBHLLLL", 0, 0, r.stream, self.device, self.sent_timestamp, r.raw_timestamp, r.value)

    @property
    def readings(self) -> list[Reading]:
        return [self.reading]

    @classmethod
    def decode(cls, data: bytes) -> IndividualReadingReport:
        if len(data) != 20:
            raise ReportError(f"An IndividualReadingReport is 20 bytes, got {len(data)}")
        fmt, _reserved, stream, device, sent, raw_ts, value = struct.unpack("<BBHLLLL", data)
        if fmt != 0:
            raise ReportError(f"Unsupported Report Format: {fmt}")
        return cls(device=device, sent_timestamp=sent, reading=Reading(stream, 0, raw_ts, value))


@dataclass
class BroadcastReport:
    """Unsigned readings (format 3): 16-byte header, readings, auth block (none for auth type 0)."""

    device: int
    sent_timestamp: int
    readings: list[Reading] = field(default_factory=list)
    auth_type: int = 0

    format = 3
    verified = True

    def encode(self) -> bytes:
        body = b"".join(_READING.pack(r.stream, 0, r.reading_id, r.raw_timestamp, r.value) for r in self.readings)
        return struct.pack("<BBHLLL", 3, self.auth_type, len(body), self.device, self.sent_timestamp, 0) + body

    @classmethod
    def decode(cls, data: bytes) -> BroadcastReport:
        if len(data) < 16:
            raise ReportError(f"A BroadcastReport has a 16-byte header, got {len(data)} bytes")
        fmt, auth, length, device, sent, _reserved = struct.unpack_from("<BBHLLL", data)
        if fmt != 3:
            raise ReportError(f"Unsupported Report Format: {fmt}")
        if auth != 0:
            raise ReportError(f"Unsupported BroadcastReport auth type: {auth}")
        if length % _READING_SIZE or 16 + length != len(data):
            raise ReportError(f"Invalid BroadcastReport length: {length} bytes of readings in {len(data)} bytes")
        readings = list(map(Reading._make, _READING_FIELDS.iter_unpack(data[16:])))
        return cls(device=device, sent_timestamp=sent, readings=readings, auth_type=auth)


AnyBinaryReport = SignedListReport | IndividualReadingReport | BroadcastReport


def _frame_length(data: bytes, offset: int) -> int:
    fmt = data[offset]
    if fmt == 0:
        return 20
    if fmt == 1:
        if len(data) - offset < 4:
            raise ReportError("Truncated SignedListReport header")
        return int.from_bytes(data[offset : offset + 4], "little") >> 8
    if fmt == 3:
        if len(data) - offset < 16:
            raise ReportError("Truncated BroadcastReport header")
        return 16 + int.from_bytes(data[offset + 2 : offset + 4], "little")
    raise ReportError(f"Unsupported Report Format: {fmt}")


def split_reports(data: bytes) -> list[bytes]:
    """Split a byte stream of back-to-back reports by their format byte and length."""
    frames, offset = [], 0
    while offset < len(data):
        length = _frame_length(data, offset)
        if length < 1 or offset + length > len(data):
            raise ReportError(f"Truncated report at byte {offset}: needs {length} bytes, {len(data) - offset} left")
        frames.append(data[offset : offset + length])
        offset += length
    return frames


def decode_binary(data: bytes, key: bytes | None = None) -> AnyBinaryReport:
    """Decode one binary report of any format."""
    if not data:
        raise ReportError("Empty report")
    if data[0] == 1:
        return SignedListReport.decode(data, key)
    if data[0] == 0:
        return IndividualReadingReport.decode(data)
    if data[0] == 3:
        return BroadcastReport.decode(data)
    raise ReportError(f"Unsupported Report Format: {data[0]}")
