"""MdoHelper and time helpers."""

from __future__ import annotations

import datetime as dt

import pytest

from iotile_cloud.utils.basic import datetime_to_str, str_to_datetime
from iotile_cloud.utils.mdo import MdoHelper

UTC = dt.timezone.utc


def test_mdo_compute_and_reverse() -> None:
    helper = MdoHelper(3.0, 2.0, 0.5)
    assert helper.compute(4) == 6.5
    assert helper.compute_reverse(6.5) == 4
    assert helper.compute_value(4) == 6.5  # README name
    assert str(helper) == "0.5+3.0x/2.0"
    assert str(MdoHelper(2, 1)) == "2x/1"
    assert str(MdoHelper(2, 1, 0)) == "0+2x/1"  # an offset of 0 is an offset


def test_mdo_float_order_matches_the_server() -> None:
    # value = raw * m / d, then output = value * m / d: the golden files show this noise.
    value = MdoHelper(378541, 100000).compute(10)
    assert value == 37.8541
    assert MdoHelper(100000, 378541).compute(value) == 10.000000000000002


@pytest.mark.parametrize("m, d", [(0, 1), (1, 0)])
def test_mdo_zero_factor_is_a_value_error(m: int, d: int) -> None:
    with pytest.raises(ValueError, match="must not be 0"):
        MdoHelper(m, d)


def test_datetime_round_trip() -> None:
    stamp = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert datetime_to_str(stamp) == "2024-01-02T03:04:05Z"
    assert str_to_datetime("2024-01-02T03:04:05Z") == stamp
    assert str_to_datetime("2024-01-02T03:04:05") == stamp
    assert str_to_datetime("2024-01-02T05:04:05+02:00") == stamp
    assert str_to_datetime("2017-04-11T20:37:29.608972Z").microsecond == 608972
    assert str_to_datetime("2017-04-11T20:37:29.6Z").microsecond == 600000


@pytest.mark.parametrize("text", ["yesterday", "", "2024-13-01T00:00:00Z", "2024-01-01T00:00:00.Z"])
def test_bad_timestamps(text: str) -> None:
    with pytest.raises(ValueError, match="Invalid timestamp"):
        str_to_datetime(text)
