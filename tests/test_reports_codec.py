"""The report codec: reports.md test vectors and every sample in shared/testdata/reports."""

from __future__ import annotations

import json

import msgpack
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotile_cloud.reports import (
    BroadcastReport,
    DictEvent,
    DictionaryReport,
    DictReading,
    IndividualReadingReport,
    Reading,
    ReportError,
    SignedListReport,
    decode_report,
    password_key,
    split_reports,
    to_utc,
)

from .conftest import TESTDATA

REPORTS = TESTDATA / "reports"
VECTOR = bytes.fromhex(
    "015c000034120000040000001e0000000000ffd7"
    "01500000010000000a00000064000000"
    "015000000200000014000000c8000000"
    "005c0000030000000046c3a307000000"
    "0100000003000000a2ffb701905f68d847eb99b58a729a3e"
)
READINGS = [Reading(0x5001, 1, 10, 100), Reading(0x5001, 2, 20, 200), Reading(0x5C00, 3, 0x80000000 | 600000000, 7)]


def test_hash_only_vector() -> None:
    report = SignedListReport(device=0x1234, report_id=4, sent_timestamp=30, readings=READINGS)
    assert report.encode() == VECTOR
    decoded = SignedListReport.decode(VECTOR)
    assert decoded.readings == READINGS and decoded.verified is True
    assert (decoded.device, decoded.report_id, decoded.sent_timestamp) == (0x1234, 4, 30)
    assert (decoded.lowest_id, decoded.highest_id, decoded.streamer_selector) == (1, 3, 0xD7FF)


def test_user_key_vector_encrypts_and_verifies() -> None:
    report = SignedListReport(device=2, report_id=4, sent_timestamp=30, readings=READINGS, signature_flags=1)
    data = report.encode(key=bytes(32))
    assert data[-16:].hex() == "de6514d1703e034829917c7dc5618bbe"
    assert data[20:36] != VECTOR[20:36]  # the readings are encrypted
    without_key = SignedListReport.decode(data)
    assert without_key.verified is None and without_key.readings == []  # nothing exposed unverified
    assert SignedListReport.decode(data, key=bytes(32)).readings == READINGS
    with pytest.raises(ReportError, match="Invalid signature"):
        SignedListReport.decode(data, key=b"\x01" * 32)


def test_password_key() -> None:
    key = password_key("secret")
    assert len(key) == 32
    report = SignedListReport(device=2, report_id=9, sent_timestamp=1, readings=READINGS, signature_flags=1)
    assert SignedListReport.decode(report.encode(key), key).readings == READINGS


VALID = {
    "valid_16_readings.bin": 16,
    "valid_16_readings_no_ext": 16,
    "valid_100_readings.bin": 100,
    "valid_10000_readings.bin": 10000,
    "1_user_common_report.bin": 21,
    "2_sys_common_report.bin": 2,
    "3_user_reboot_report.bin": 83,
    "4_sys_reboot_report.bin": 2,
    "reset_report.bin": 110,
    "reset_report2.bin": 90,
    "device-0ade-report.bin": 258,
    "new_combined_selector.bin": 12,
    "chopped.bin": 12285,
}


@pytest.mark.parametrize("name, count", sorted(VALID.items()))
def test_valid_binaries_decode_and_round_trip(name: str, count: int) -> None:
    data = (REPORTS / name).read_bytes()
    report = decode_report(data, name if "." in name else None)
    assert isinstance(report, SignedListReport)
    assert len(report.readings) == count and report.verified
    ids = [r.reading_id for r in report.readings if r.reading_id]
    assert (report.lowest_id, report.highest_id) == (min(ids), max(ids))
    assert report.encode() == data


def test_seed_report_of_ten_devices() -> None:
    data = (TESTDATA / "seed_cloud" / "reports" / "report_100readings_10dev.bin").read_bytes()
    report = SignedListReport.decode(data)
    assert len(report.readings) == 100 and report.streamer_selector == 0xABCD
    assert report.encode() == data


@pytest.mark.parametrize(
    "name, reason",
    [
        ("invalid_footer_16_readings.bin", "Invalid Hash"),
        ("length_too_long_16_readings.bin", "Invalid report length"),
        ("length_too_short_16_readings.bin", "Invalid report length"),
    ],
)
def test_broken_binaries_are_refused_with_the_reason(name: str, reason: str) -> None:
    with pytest.raises(ReportError, match=reason):
        decode_report((REPORTS / name).read_bytes(), name)


def test_not_a_report() -> None:
    data = (REPORTS / "not_a_report.jpg").read_bytes()
    with pytest.raises(ReportError, match="extension not supported"):
        decode_report(data, "not_a_report.jpg")
    with pytest.raises(ReportError, match="Unsupported Report Format: 255"):
        decode_report(data, "not_a_report.bin")
    for bad in (b"", b"\x01", VECTOR[:-1], VECTOR + b"\x00", b"\x01" + b"\x00" * 60):
        with pytest.raises(ReportError):
            decode_report(bad)


@pytest.mark.parametrize(
    "name, readings, events",
    [
        ("v2_report1.json", 0, 2),
        ("v2_report1.mp", 0, 2),
        ("v2_report1_python2.mp", 0, 2),
        ("v2_report2.json", 0, 2),
        ("v2_report2.mp", 0, 2),
        ("v2_report3.json", 0, 2),
        ("v2_report4.json", 0, 2),
        ("v2_event_with_data.json", 2, 2),
        ("report_broker_combined.json", 11, 5),
        ("device-0bd8-report.mp", 14, 14),
        ("v2_report_mobile_app.mp", 0, 16),
    ],
)
def test_dictionary_reports(name: str, readings: int, events: int) -> None:
    report = decode_report((REPORTS / name).read_bytes(), name)
    assert isinstance(report, DictionaryReport)
    assert (len(report.readings), len(report.events)) == (readings, events)
    again = DictionaryReport.decode_msgpack(report.encode_msgpack())
    assert again.as_dict() == report.as_dict()
    assert DictionaryReport.decode_json(report.encode_json()).as_dict() == report.as_dict()


def test_dictionary_details() -> None:
    report = decode_report((REPORTS / "v2_event_with_data.json").read_bytes(), "x.json")
    assert isinstance(report, DictionaryReport)
    assert report.readings[0].stream == 0x5051 and report.readings[0].value == 5
    assert report.events[0].extra_data == {"foo": "a", "bar": "b"}
    naive = decode_report((REPORTS / "report_broker_combined.json").read_bytes(), "x.json")
    assert naive.readings[0].timestamp is not None and naive.readings[0].timestamp.tzinfo is not None
    for bad in (
        b"[]",
        b'{"format": "v200", "device": 1}',
        b'{"format": "v100"}',
        b"{not json",
        b'{"format": "v100", "device": 1, "data": [{"stream": "zz", "value": 1}]}',
    ):
        with pytest.raises(ReportError):
            decode_report(bad, "bad.json")


def test_other_binary_formats_and_framing() -> None:
    single = IndividualReadingReport(device=7, sent_timestamp=100, reading=Reading(0x100B, 0, 50, 9))
    broadcast = BroadcastReport(device=7, sent_timestamp=100, readings=READINGS)
    blob = single.encode() + VECTOR + broadcast.encode()
    frames = split_reports(blob)
    assert frames == [single.encode(), VECTOR, broadcast.encode()]
    assert IndividualReadingReport.decode(frames[0]) == single
    assert BroadcastReport.decode(frames[2]).readings == READINGS
    with pytest.raises(ReportError, match="Truncated"):
        split_reports(blob[:-3])
    with pytest.raises(ReportError, match="Unsupported Report Format: 9"):
        split_reports(b"\x09" * 20)


def test_timestamps() -> None:
    import datetime as dt

    received = dt.datetime(2026, 2, 1, 2, 0, tzinfo=dt.timezone.utc)
    assert to_utc(0x80000000 | 600000000, 30, received) == dt.datetime(2019, 1, 5, 10, 40, tzinfo=dt.timezone.utc)
    assert to_utc(10, 30, received) == received - dt.timedelta(seconds=20)
    assert to_utc(0xFFFFFFFF, 30, received) is None


@given(
    st.lists(
        st.tuples(
            st.integers(0, 0xFFFF), st.integers(1, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)
        ),
        max_size=40,
    ),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0, 1]),
)
def test_encode_decode_round_trip(
    rows: list[tuple[int, int, int, int]], device: int, report_id: int, flags: int
) -> None:
    readings = [Reading(*row) for row in rows]
    report = SignedListReport(
        device=device, report_id=report_id, sent_timestamp=5, readings=readings, signature_flags=flags
    )
    key = b"k" * 32
    data = report.encode(key)
    assert SignedListReport.decode(data, key).readings == readings


# Found by comparing with coretools (iotile-core 5.2) and the original cloud's parser.


def test_dictionary_ids_span_readings_and_events_when_built() -> None:
    """A report built from items gets lowest/highest over readings and events, ids 0 left out."""
    report = DictionaryReport(
        device=10,
        readings=[DictReading(0x5001, 7, 1, None, 1), DictReading(0x5001, 0, 2, None, 2)],
        events=[DictEvent(0x5020, 3, 1, None), DictEvent(0x5020, 12, 1, None)],
    )
    assert (report.lowest_id, report.highest_id) == (3, 12)
    again = DictionaryReport.decode_msgpack(report.encode_msgpack())
    assert (again.lowest_id, again.highest_id) == (3, 12)
    given = DictionaryReport(device=10, lowest_id=1, highest_id=20, events=[DictEvent(0x5020, 3, 1, None)])
    assert (given.lowest_id, given.highest_id) == (1, 20)
    # A decoded report keeps what it says, even 0/0 next to items with ids.
    said = (
        b'{"format": "v100", "device": 1, "lowest_id": 0, "highest_id": 0,'
        b' "events": [{"stream": 20512, "streamer_local_id": 5}]}'
    )
    decoded = DictionaryReport.decode_json(said)
    assert (decoded.lowest_id, decoded.highest_id) == (0, 0)


# coretools' FlexibleDictionaryReport.FromReadings for the report built in the test below.
CORETOOLS_MSGPACK = bytes.fromhex(
    "8aa6666f726d6174a476313030a66465766963650aae73747265616d65725f696e646578cd0100b173747265616d65725f73656c"
    "6563746f72cdffffae696e6372656d656e74616c5f696409a96c6f776573745f696402aa686967686573745f696404b564657669"
    "63655f73656e745f74696d657374616d701ea66576656e74739186a673747265616dcd5020b06465766963655f74696d65737461"
    "6d7007b173747265616d65725f6c6f63616c5f696404a974696d657374616d70b4323032302d30312d30315430303a30303a3030"
    "5aaa65787472615f6461746181a16101a464617461c0a4646174619285a673747265616dcd5001b06465766963655f74696d6573"
    "74616d7005b173747265616d65725f6c6f63616c5f696402a974696d657374616d70ba323032302d30312d30315430303a30303a"
    "30302e303030303035a576616c7565fd85a673747265616dcd5c00b06465766963655f74696d657374616d70ce80000005b17374"
    "7265616d65725f6c6f63616c5f696403a974696d657374616d70b3323030302d30312d30315430303a30303a3035a576616c7565"
    "03"
)


def test_dictionary_report_written_as_coretools_writes_it() -> None:
    """Same keys in the same order, reading times naive UTC ISO, event times with "Z", and a reading
    with a real-time-clock stamp but no time gets that time: byte for byte what coretools writes."""
    import datetime as dt

    utc = dt.timezone.utc
    report = DictionaryReport(
        device=10,
        streamer_index=0x100,
        streamer_selector=0xFFFF,
        report_id=9,
        sent_timestamp=30,
        readings=[
            DictReading(0x5001, 2, 5, dt.datetime(2020, 1, 1, 0, 0, 0, 5, tzinfo=utc), -3),
            DictReading(0x5C00, 3, 0x80000005, None, 3),
        ],
        events=[DictEvent(0x5020, 4, 7, dt.datetime(2020, 1, 1, tzinfo=utc), {"a": 1}, None)],
    )
    assert report.encode_msgpack() == CORETOOLS_MSGPACK
    decoded = DictionaryReport.decode_msgpack(CORETOOLS_MSGPACK)
    assert decoded.as_dict() == report.as_dict() == orjson.loads(report.encode_json())
    assert decoded.readings[1].timestamp == dt.datetime(2000, 1, 1, 0, 0, 5, tzinfo=utc)
    assert decoded.events[0].timestamp == dt.datetime(2020, 1, 1, tzinfo=utc)
    # Another time zone is written as the same instant in UTC.
    plus2 = dt.timezone(dt.timedelta(hours=2))
    report.readings[0].timestamp = dt.datetime(2020, 1, 1, 2, 0, 0, 5, tzinfo=plus2)
    report.events[0].timestamp = dt.datetime(2020, 1, 1, 2, tzinfo=plus2)
    assert report.encode_msgpack() == CORETOOLS_MSGPACK


def _report_with(**fields: object) -> dict[str, object]:
    return {"format": "v100", "device": 10, "streamer_index": 100, "streamer_selector": 65535, **fields}


def _nested(depth: int) -> object:
    node: object = 1
    for _ in range(depth):
        node = [node]
    return node


MALFORMED_MSGPACK = {
    "map as key": b"\x81\x81\x01\x02\x03",  # unhashable in Python
    "list as key": b"\x81\x91\x01\x02",
    "events a number": msgpack.packb(_report_with(events=1.5)),
    "data a map": msgpack.packb(_report_with(data={"stream": 1})),
    "data a string": msgpack.packb(_report_with(data="5001")),
    "sent inf": msgpack.packb(_report_with(device_sent_timestamp=float("inf"))),
    "sent nan": msgpack.packb(_report_with(device_sent_timestamp=float("nan"))),
    "id past int64": msgpack.packb(_report_with(incremental_id=2**64 - 1)),
    "value nan": msgpack.packb(_report_with(data=[{"stream": 20512, "value": float("nan")}])),
    "value past int64": msgpack.packb(_report_with(data=[{"stream": 20512, "value": 2**63}])),
    "stream inf": msgpack.packb(_report_with(data=[{"stream": float("inf"), "value": 1}])),
    "stream fraction": msgpack.packb(_report_with(data=[{"stream": 20512.5, "value": 1}])),
    "stream a list": msgpack.packb(_report_with(data=[{"stream": [1], "value": 1}])),
    "extra_data 300 deep": msgpack.packb(_report_with(events=[{"stream": 20512, "extra_data": {"a": _nested(300)}}])),
    "data 1000 deep": msgpack.packb(_report_with(events=[{"stream": 20512, "data": _nested(1000)}])),
    "ext type value": msgpack.packb(_report_with(events=[{"stream": 20512, "data": msgpack.ExtType(5, b"x")}])),
    "ext type key": msgpack.packb(_report_with(events=[{"stream": 20512, "data": {msgpack.ExtType(5, b"x"): 1}}])),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_MSGPACK))
def test_malformed_msgpack_reports_are_refused_with_a_report_error(name: str) -> None:
    with pytest.raises(ReportError):
        DictionaryReport.decode_msgpack(MALFORMED_MSGPACK[name])


def test_malformed_json_reports_are_refused_with_a_report_error() -> None:
    for fields in ({"events": 1.5}, {"data": 3}, {"events": [{"stream": 20512, "data": _nested(500)}]}):
        with pytest.raises(ReportError):
            DictionaryReport.decode_json(json.dumps(_report_with(**fields)).encode())
    with pytest.raises(ReportError):  # orjson reads integers past 64 bits as floats
        DictionaryReport.decode_json(b'{"format": "v100", "device": 10, "incremental_id": 18446744073709551616}')


def test_what_a_dictionary_report_accepts_it_can_write_again() -> None:
    """Numeric map keys become text (as JSON names them), so the decoded report writes as JSON;
    nesting well within the limit is kept."""
    blob = msgpack.packb(
        _report_with(
            data=[{"stream": 20512.0, "device_timestamp": 4294967295.0, "value": 2**63 - 1}],
            events=[{"stream": "5c00", "extra_data": {1: "a", None: "b", 2.5: "c"}, "data": _nested(150)}],
        )
    )
    report = DictionaryReport.decode_msgpack(blob)
    assert report.readings[0].stream == 0x5020 and report.readings[0].raw_timestamp == 0xFFFFFFFF
    assert report.events[0].stream == 0x5C00 and report.events[0].extra_data == {"1": "a", "null": "b", "2.5": "c"}
    assert DictionaryReport.decode_json(report.encode_json()).as_dict() == report.as_dict()
    assert DictionaryReport.decode_msgpack(report.encode_msgpack()).as_dict() == report.as_dict()
