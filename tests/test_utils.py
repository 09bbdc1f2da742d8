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
    assert str(MdoHelper(m=3, d=2, o=0.5)) == "0.5+3.0x/2.0"  # floats, as 0.9.14 printed them
    assert str(MdoHelper(2, 1)) == str(MdoHelper(2, 1, 0)) == "2.0x/1.0"


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


def test_iso_from_micros_matches_single_formatting() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from iotile_cloud.utils.basic import iso_from_micros, utc_isoformat

    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)

    # No deadline: the first example pays numpy's import, slow on a busy machine.
    @settings(deadline=None)
    @given(st.lists(st.integers(-2_208_988_800_000_000, 253_402_300_799_999_999), min_size=1, max_size=50))
    def check(values: list[int]) -> None:
        assert iso_from_micros(values) == [utc_isoformat(epoch + dt.timedelta(microseconds=v)) for v in values]

    check()
    assert iso_from_micros([]) == []


def test_display_values() -> None:
    from iotile_cloud.utils.mdo import display_value, display_values

    assert display_values([1.0, 2.345], [0, 0], 2) == ["1.00", "2.35"]
    assert display_values([None, 3.0], [7.25, None], 1) == ["7.2", "3.0"] == [display_value(None, 7.25, 1), "3.0"]
    assert display_value(None, None, 2) == ""


def test_display_values_of_many_points_match_one_by_one() -> None:
    """Long pages format each distinct number once (repeats share one string); the texts must be
    the very ones single formatting gives, -0.0, NaN and infinities included."""
    import numpy as np

    from iotile_cloud.utils.mdo import REPEATS_MIN, display_values, fixed_point_texts

    rng = np.random.default_rng(7)
    repeating = rng.integers(0, 50, 5000) * 0.125  # few distinct values: the shared-string path
    distinct = rng.random(5000) * 1000  # all distinct: formatted one by one
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, -0.001, 2.675] * 100)
    for numbers in (repeating, distinct, special):
        assert len(numbers) >= REPEATS_MIN
        for places in (0, 2, 5):
            expected = [f"{v:.{places}f}" for v in numbers.tolist()]
            assert fixed_point_texts(numbers, places) == expected
            assert display_values(numbers.tolist(), numbers.tolist(), places) == expected
    shared = fixed_point_texts(repeating, 2)
    assert len({id(text) for text in shared}) == len(set(shared))  # one object per distinct text


def test_iso_from_micros_mixes_whole_and_fractional_seconds() -> None:
    from iotile_cloud.utils.basic import iso_from_micros, utc_isoformat

    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    values = [1_767_225_600_000_000 + i * 1_000_000 + (i % 3) * 250 for i in range(3000)]
    texts = iso_from_micros(values)
    assert texts == [utc_isoformat(epoch + dt.timedelta(microseconds=v)) for v in values]
    assert {len(text) for text in texts} == {20, 27}
