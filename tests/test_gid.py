"""Slugs: the README examples, the 0.9.14 fixes, and property-based round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotile_cloud.utils.gid import (
    IOTileBlockSlug,
    IOTileDeviceSlug,
    IOTileFleetSlug,
    IOTileProjectSlug,
    IOTileStreamerSlug,
    IOTileStreamSlug,
    IOTileVariableSlug,
    fix_gid,
    gid2int,
    gid_join,
    gid_split,
    int2did,
    int2pid,
    int16gid,
    int32gid,
    int48gid,
    int64gid,
)


def test_readme_examples() -> None:
    project = IOTileProjectSlug(5)
    assert str(project) == "p--0000-0005"
    for form in (10, "000a", "d--000a", 0xA, "0x000a", "d--0000-0000-0000-000a"):
        assert str(IOTileDeviceSlug(form)) == "d--0000-0000-0000-000a"
    variable = IOTileVariableSlug("5001", project)
    assert str(variable) == "v--0000-0005--5001"
    stream = IOTileStreamSlug()
    stream.from_parts(project=project, device=IOTileDeviceSlug(10), variable=variable)
    assert str(stream) == "s--0000-0005--0000-0000-0000-000a--5001"
    assert stream.get_parts() == {
        "project": "p--0000-0005",
        "device": "d--0000-0000-0000-000a",
        "variable": "v--0000-0005--5001",
    }


def test_helpers() -> None:
    assert int16gid(0xAB) == "00ab"
    assert int32gid(0x10002) == "0001-0002"
    assert int48gid(1) == "0000-0000-0001"
    assert int64gid(1) == "0000-0000-0000-0001"
    assert int2did(0x1234) == "0000-0000-0000-1234"
    assert int2pid(5) == "0000-0005"
    assert gid_split("s--a--b") == ["s", "a", "b"]
    assert gid_join(["p", "0000-0001"]) == "p--0000-0001"
    assert fix_gid("1234", 2) == "0000-1234"
    assert gid2int("0000-0001-0000") == 0x10000


def test_fixes_equality_hash_repr_and_case() -> None:
    assert IOTileProjectSlug(1) == IOTileProjectSlug("p--0000-0001")
    assert hash(IOTileProjectSlug(1)) == hash(IOTileProjectSlug("p--0001"))
    assert IOTileDeviceSlug("D--00AB") == "d--0000-0000-0000-00ab"
    assert repr(IOTileDeviceSlug(1)) == "IOTileDeviceSlug('d--0000-0000-0000-0001')"
    assert len({IOTileDeviceSlug(1), IOTileDeviceSlug("d--0001")}) == 1


def test_64bit_device_ids_are_kept_whole() -> None:
    big = 0x0001_0000_0000_0002
    assert IOTileDeviceSlug(big).get_id() == big
    assert str(IOTileDeviceSlug(big)) == "d--0001-0000-0000-0002"
    with pytest.raises(ValueError, match="48 bits"):
        IOTileDeviceSlug(big, allow_64bits=False)


def test_other_slugs() -> None:
    block = IOTileBlockSlug(0x4E7, block=1)
    assert str(block) == "b--0001-0000-0000-04e7"
    assert (block.get_id(), block.get_block()) == (0x4E7, 1)
    assert IOTileBlockSlug("b--0001-0000-0000-04e7") == block
    streamer = IOTileStreamerSlug(IOTileDeviceSlug(0x82), 1)
    assert str(streamer) == "t--0000-0000-0000-0082--0001"
    assert streamer.get_device() == "d--0000-0000-0000-0082"
    assert streamer.get_index() == "0001"
    assert str(IOTileFleetSlug(2)) == "g--0000-0000-0002"
    assert IOTileVariableSlug("v--0000-0007--100b").formatted_local_id() == "100b"
    virtual = IOTileStreamSlug.build(5, None, "5001")
    assert str(virtual) == "s--0000-0005--0000-0000-0000-0000--5001"
    assert IOTileProjectSlug(5).formatted_id() == "0000-0005"


@pytest.mark.parametrize(
    "factory, text",
    [
        (IOTileProjectSlug, "p--xyz"),
        (IOTileProjectSlug, "d--0001"),
        (IOTileProjectSlug, "p--0001-0002-0003"),
        (IOTileDeviceSlug, "d--zzzz"),
        (IOTileDeviceSlug, "s--0000-0001--0000-0000-0000-0001--5001"),
        (IOTileDeviceSlug, ""),
        (IOTileDeviceSlug, "0x"),
        (IOTileStreamSlug, "s--garbage"),
        (IOTileStreamSlug, "s--0000-0001--0000-0000-0000-0001"),
        (IOTileVariableSlug, "v--0000-0001"),
        (IOTileVariableSlug, "v--0000-0001--12345"),
        (IOTileFleetSlug, "g--0000-0000-0000-0001"),
    ],
)
def test_malformed_slugs_raise_value_error(factory: type, text: str) -> None:
    with pytest.raises(ValueError) as info:
        factory(text)
    assert str(info.value)  # a readable reason


@pytest.mark.parametrize("value", [-1, 1 << 64, 1.5, None, object(), True])
def test_bad_device_values(value: object) -> None:
    with pytest.raises(ValueError):
        IOTileDeviceSlug(value)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_device_int_round_trip(number: int) -> None:
    slug = IOTileDeviceSlug(number)
    assert slug.get_id() == number
    assert IOTileDeviceSlug(str(slug)) == slug
    assert IOTileDeviceSlug(slug.formatted_id().replace("-", "")).get_id() == number


@given(st.integers(min_value=0, max_value=(1 << 32) - 1))
def test_project_int_round_trip(number: int) -> None:
    slug = IOTileProjectSlug(number)
    assert slug.get_id() == number
    assert str(IOTileProjectSlug(str(slug))) == str(slug)


_hex4 = st.text(alphabet="0123456789abcdef", min_size=4, max_size=4)


@given(st.lists(_hex4, min_size=2, max_size=2), st.lists(_hex4, min_size=4, max_size=4), _hex4)
def test_stream_string_round_trip(pid: list[str], did: list[str], vid: str) -> None:
    text = f"s--{'-'.join(pid)}--{'-'.join(did)}--{vid}"
    slug = IOTileStreamSlug(text)
    assert str(slug) == text
    parts = slug.get_parts()
    rebuilt = IOTileStreamSlug()
    rebuilt.from_parts(project=parts["project"], device=parts["device"], variable=parts["variable"])
    assert rebuilt == slug


@given(st.integers(0, (1 << 32) - 1), st.integers(0, (1 << 48) - 1), st.integers(1, 0xFFFF))
def test_from_parts_get_parts(project: int, device: int, lid: int) -> None:
    stream = IOTileStreamSlug()
    stream.from_parts(project=project, device=device, variable=IOTileVariableSlug(lid, project))
    parts = stream.get_parts()
    assert IOTileProjectSlug(parts["project"]).get_id() == project
    assert IOTileDeviceSlug(parts["device"]).get_id() == device
    assert IOTileVariableSlug(parts["variable"]).get_lid() == lid


@given(st.text(max_size=30))
def test_arbitrary_text_is_a_slug_or_a_value_error(text: str) -> None:
    for factory in (IOTileProjectSlug, IOTileDeviceSlug, IOTileStreamSlug, IOTileVariableSlug, IOTileFleetSlug):
        try:
            slug = factory(text)
        except ValueError as error:
            assert str(error)
        else:
            assert str(slug) == str(factory(str(slug)))
