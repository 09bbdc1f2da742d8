"""IOTile global ids (gids) and slugs, shared by the client, the CLI and the server.

A gid is lowercase hex in 4-digit groups joined by ``-``; a slug is a one-letter type followed by
gids joined by ``--`` (``p--0000-0005``, ``s--0000-0005--0000-0000-0000-000a--5001``).
Missing leading groups are zero padded, so ``d--1234`` is ``d--0000-0000-0000-1234``.

Every constructor raises :class:`ValueError` with a readable message for malformed input.
"""

from __future__ import annotations

import re
from builtins import int  # noqa: UP029 - a name 0.9.14 exposed from this module
from typing import Any, TypeGuard, Union

__all__ = [
    "int16gid",
    "int32gid",
    "int48gid",
    "int64gid",
    "int2did",
    "int2did_short",
    "int2pid",
    "int2vid",
    "int2bid",
    "int2fid",
    "gid_split",
    "gid_join",
    "fix_gid",
    "gid2int",
    "IOTileCloudSlug",
    "IOTileProjectSlug",
    "IOTileDeviceSlug",
    "IOTileFleetSlug",
    "IOTileBlockSlug",
    "IOTileStreamerSlug",
    "IOTileVariableSlug",
    "IOTileStreamSlug",
]

_HEX_GROUP = re.compile(r"^[0-9a-f]{1,4}$")
_MAX = {1: 0xFFFF, 2: 0xFFFFFFFF, 3: 0xFFFFFFFFFFFF, 4: 0xFFFFFFFFFFFFFFFF}


def int16gid(n: int) -> str:
    return f"{n & 0xFFFF:04x}"


def _groups(n: int, count: int) -> str:
    if not isinstance(n, int) or isinstance(n, bool):
        raise ValueError(f"Expected an integer id, got {n!r}")
    if n < 0 or n > _MAX[count]:
        raise ValueError(f"Id {n} does not fit in {16 * count} bits")
    return "-".join(f"{(n >> (16 * i)) & 0xFFFF:04x}" for i in reversed(range(count)))


def int32gid(n: int) -> str:
    return _groups(n, 2)


def int48gid(n: int) -> str:
    return _groups(n, 3)


def int64gid(n: int) -> str:
    return _groups(n, 4)


def int2did(n: int) -> str:
    return int64gid(n)


def int2did_short(n: int) -> str:
    return int48gid(n)


def int2pid(n: int) -> str:
    return int32gid(n)


def int2vid(n: int) -> str:
    return _groups(n, 1)


def int2bid(n: int) -> str:
    return _groups(n, 1)


def int2fid(n: int) -> str:
    return int48gid(n)


def gid_split(val: str) -> list[str]:
    """``'p--0000-0001'`` -> ``['p', '0000-0001']`` (a bare id gives one part, as in 0.9.14)."""
    if not isinstance(val, str):
        raise ValueError(f"Expected a slug string, got {val!r}")
    return val.split("--")


def gid_join(elements: list[str]) -> str:
    return "--".join(elements)


def fix_gid(gid: str, num_terms: int) -> str:
    """Validate a gid and zero-pad it to ``num_terms`` 4-digit groups (lowercase)."""
    if not isinstance(gid, str) or not gid:
        raise ValueError(f"Illegal id {gid!r}: expected hex groups like '0000-00ab'")
    elements = gid.lower().split("-")
    for element in elements:
        if not _HEX_GROUP.match(element):
            raise ValueError(f"Illegal id {gid!r}: {element!r} is not a group of 1 to 4 hex digits")
    if len(elements) > num_terms:
        raise ValueError(f"Illegal id {gid!r}: more than {num_terms} groups of 4 hex digits")
    elements = ["0000"] * (num_terms - len(elements)) + [e.zfill(4) for e in elements]
    return "-".join(elements)


def gid2int(gid: str) -> int:
    try:
        return int("".join(gid.split("-")), 16)
    except (ValueError, AttributeError):
        raise ValueError(f"Illegal id {gid!r}: not hex") from None


def _plain_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _hex_to_int(text: str, bits: int, what: str) -> int:
    raw = text.lower()
    if raw.startswith("0x"):
        raw = raw[2:]
    raw = raw.replace("-", "")
    if not raw or not re.fullmatch(r"[0-9a-f]+", raw):
        raise ValueError(f"Illegal {what} id {text!r}: expected a hex number")
    value = int(raw, 16)
    if value >= 1 << bits:
        raise ValueError(f"Illegal {what} id {text!r}: does not fit in {bits} bits")
    return value


class IOTileCloudSlug:
    """Base class: a slug string of the form ``<type>--<gid>[--<gid>...]`` in ``_slug``."""

    _type: str = ""
    _slug: str = ""

    def __str__(self) -> str:
        return self._slug

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self._slug}')"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IOTileCloudSlug):
            return self._slug == other._slug
        if isinstance(other, str):
            return self._slug == other.lower()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._slug)

    def formatted_id(self) -> str:
        return gid_join(gid_split(self._slug)[1:])

    def to_string(self) -> str:
        return self._slug

    def set_from_single_id_slug(self, type: str, terms: int, id: str) -> None:  # noqa: A002 - 0.9.14 names
        """``<type>--<id>`` with the id zero padded to ``terms`` groups (a prefixed id keeps its id)."""
        if type not in ("p", "d", "b", "g"):
            raise ValueError("Slugs must start with p/d/b/g")
        if not isinstance(id, str):
            raise ValueError("Slug must be a string")
        parts = gid_split(id.lower())
        if parts[0] in ("p", "d", "b", "g"):
            if len(parts) != 2:
                raise ValueError(f"Illegal slug {id!r}: expected '{parts[0]}--' and one id")
            parts = parts[1:]
        self._slug = gid_join([type, fix_gid(gid_join(parts), terms)])

    def get_id(self) -> int:
        """The numeric id of a project, device or fleet slug (ValueError for the others)."""
        parts = gid_split(self._slug)
        if len(parts) != 2:
            raise ValueError("Cannot call get_id() for IDs with more than one term")
        if parts[0] not in ("p", "d", "g"):
            raise ValueError("Only Devices/DataBlocks/Fleets have single IDs")
        return gid2int(parts[1])

    def _single(self, text: str, terms: int, what: str) -> int:
        """The id of ``<type>--<hex>`` or bare ``<hex>`` (0x prefix allowed when bare), zero padded
        to ``terms`` groups and stored; raises ValueError for another prefix or a malformed id."""
        parts = gid_split(text.lower())
        if len(parts) == 1:
            value = _hex_to_int(parts[0], 16 * terms, what)
            self._slug = gid_join([self._type, _groups(value, terms)])
            return value
        if parts[0] != self._type:
            raise ValueError(f"Illegal {what} slug {text!r}: must start with '{self._type}--'")
        if len(parts) != 2:
            raise ValueError(f"Illegal {what} slug {text!r}: expected '{self._type}--' and one id")
        self._slug = gid_join([self._type, fix_gid(parts[1], terms)])
        return gid2int(parts[1])


SlugLike = Union[str, int, IOTileCloudSlug]


def _in_range(value: int, low: int, high: int, what: str) -> int:
    if not low <= value < high:
        raise ValueError(f"Illegal {what} id {value}: must be {low} or more and fit in {high.bit_length() - 1} bits")
    return value


class IOTileProjectSlug(IOTileCloudSlug):
    """``p--XXXX-XXXX``: from an int, ``p--`` slug (short forms padded), bare hex, or another slug.

    Project 0 (``p--0000-0000``) is the wildcard "no project".
    """

    _type = "p"

    def __init__(self, id: SlugLike) -> None:  # noqa: A002 - original argument name
        if isinstance(id, IOTileProjectSlug):
            self._slug = id._slug
        elif _plain_int(id):
            self._slug = gid_join(["p", int2pid(_in_range(int(id), 0, 1 << 32, "project"))])
        elif isinstance(id, str):
            self._single(id, 2, "project")
        else:
            raise ValueError(f"Illegal project id {id!r}")


class IOTileDeviceSlug(IOTileCloudSlug):
    """``d--XXXX-XXXX-XXXX-XXXX``: from an int, ``d--`` slug (short forms padded), bare hex,
    ``'0x..'`` or another slug.

    Ints up to 64 bits are kept whole (the original truncated them to 48 bits); with
    ``allow_64bits=False`` anything over 48 bits is refused.
    """

    _type = "d"

    def __init__(self, id: SlugLike, allow_64bits: bool = True) -> None:  # noqa: A002
        bits = 64 if allow_64bits else 48
        if isinstance(id, IOTileDeviceSlug):
            self._slug = id._slug
        elif isinstance(id, IOTileBlockSlug):
            self._slug = gid_join(["d", int2did(id.get_id())])
        elif _plain_int(id):
            self._slug = gid_join(["d", int2did(_in_range(int(id), 0, 1 << bits, "device"))])
        elif isinstance(id, str):
            _in_range(self._single(id, 4, "device"), 0, 1 << bits, "device")
        else:
            raise ValueError(f"Illegal device id {id!r}: must be an int or str")


class IOTileFleetSlug(IOTileCloudSlug):
    """``g--XXXX-XXXX-XXXX`` (48 bits)."""

    _type = "g"

    def __init__(self, id: SlugLike) -> None:  # noqa: A002
        if isinstance(id, IOTileFleetSlug):
            self._slug = id._slug
        elif _plain_int(id):
            self._slug = gid_join(["g", int2fid(_in_range(int(id), 0, 1 << 48, "fleet"))])
        elif isinstance(id, str):
            self._single(id, 3, "fleet")
        else:
            raise ValueError(f"Illegal fleet id {id!r}: must be an int or str")


class IOTileBlockSlug(IOTileCloudSlug):
    """``b--BBBB-XXXX-XXXX-XXXX``: data block ``BBBB`` (``_block``) of device ``XXXX-XXXX-XXXX``.

    From a positive int or bare hex (block ``block``), a ``d--`` slug (a four-group one carries its
    block), or a full four-group ``b--`` slug.
    """

    _type = "b"
    _block: str | None = None

    def __init__(self, id: SlugLike, block: int = 0) -> None:  # noqa: A002
        if isinstance(id, IOTileBlockSlug):
            self._slug, self._block = id._slug, id._block
            return
        if _plain_int(block) and not 0 <= block <= 0xFFFF:
            raise ValueError(f"Illegal block number {block!r}: must be 0..65535")
        if _plain_int(id):
            device = _in_range(int(id), 1, 1 << 64, "data block")
            self._set(int16gid(device >> 48) if device >> 48 else int2bid(block), device & 0xFFFFFFFFFFFF)
            return
        if isinstance(id, IOTileDeviceSlug):
            id = str(id)  # noqa: A001
        if not isinstance(id, str):
            raise ValueError(f"Illegal data block id {id!r}: must be an int or str")
        parts = gid_split(id.lower())
        if len(parts) == 1:
            device = _in_range(_hex_to_int(parts[0], 64, "data block"), 1, 1 << 64, "data block")
            self._set(int2bid(block), device & 0xFFFFFFFFFFFF)
            return
        if parts[0] not in ("b", "d") or len(parts) != 2:
            raise ValueError(f"Illegal data block slug {id!r}: must be 'b--xxxx-xxxx-xxxx-xxxx' or a 'd--' slug")
        groups = parts[1].split("-")
        if parts[0] == "b" and len(groups) != 4:
            raise ValueError(f"Illegal data block slug {id!r}: expected format b--xxxx-xxxx-xxxx-xxxx")
        full = fix_gid(parts[1], 4)
        if len(groups) == 4:
            self._set(full[:4], gid2int(full[5:]))
        else:
            self._set(int2bid(block), gid2int(full))

    def _set(self, block: str, device: int) -> None:
        self._block = fix_gid(block, 1)
        self._slug = gid_join(["b", f"{self._block}-{int48gid(device)}"])

    def get_id(self) -> int:
        """The device id (48 bits) this block belongs to."""
        return gid2int(self.formatted_id()) & 0xFFFFFFFFFFFF

    def get_block(self) -> int:
        return gid2int(self._block or "0")


class IOTileStreamerSlug(IOTileCloudSlug):
    """``t--XXXX-XXXX-XXXX-XXXX--IIII``: streamer ``index`` of a device (``_device``, ``_index``)."""

    _type = "t"
    _device: str = ""
    _index: str = ""

    def __init__(self, device: SlugLike, index: Any = None) -> None:
        if isinstance(device, IOTileStreamerSlug):
            self._slug, self._device, self._index = device._slug, device._device, device._index
            return
        if isinstance(device, str) and device.lower().startswith("t--") and index is None:
            parts = gid_split(device.lower())
            if len(parts) != 3:
                raise ValueError(f"Illegal streamer slug {device!r}: expected 't--<device>--<index>'")
            did, number = fix_gid(parts[1], 4), fix_gid(parts[2], 1)
        else:
            if isinstance(device, (IOTileDeviceSlug, str)) or _plain_int(device):
                did = IOTileDeviceSlug(device).formatted_id()
            else:
                raise ValueError(
                    "IOTileStreamerSlug: Unknown device specifier, must be string, int or IOTileDeviceSlug"
                )
            try:
                number = int2vid(int(index))
            except (TypeError, ValueError):
                raise ValueError(f"Illegal streamer index {index!r}: must be 0..65535") from None
        self._slug = gid_join(["t", did, number])
        self._device = gid_join(["d", did])
        self._index = number

    def get_device(self) -> str:
        """The device slug as a string."""
        return self._device

    def get_index(self) -> str:
        """The streamer index in the device as a padded string."""
        return self._index


class IOTileVariableSlug(IOTileCloudSlug):
    """``v--PPPP-PPPP--VVVV``: local variable id ``VVVV`` (``_local``) within a project (zeros: any)."""

    _type = "v"
    _local: str = ""

    def __init__(self, id: SlugLike, project: SlugLike | None = None) -> None:  # noqa: A002
        if isinstance(id, IOTileVariableSlug):
            self._slug = id._slug
        elif isinstance(id, str) and "--" in id:
            parts = gid_split(id.lower())
            if parts[0] != "v" or len(parts) != 3:
                raise ValueError(f"Illegal variable slug {id!r}: expected format v--xxxx-xxxx--xxxx")
            self._slug = gid_join(["v", fix_gid(parts[1], 2), fix_gid(parts[2], 1)])
        else:
            if _plain_int(id):
                lid = int2vid(_in_range(int(id), 1, 1 << 16, "variable"))
            elif isinstance(id, str):
                lid = int2vid(_hex_to_int(id, 16, "variable"))
            else:
                raise ValueError(f"Illegal variable id {id!r}: must be int or str")
            pid = IOTileProjectSlug(project).formatted_id() if project not in (None, "") else "0000-0000"
            self._slug = gid_join(["v", pid, lid])
        self._local = gid_split(self._slug)[2]

    def formatted_local_id(self) -> str:
        return self._local

    def get_lid(self) -> int:
        return int(self._local, 16)

    def get_project_slug(self) -> IOTileProjectSlug:
        return IOTileProjectSlug(gid_split(self._slug)[1])


class IOTileStreamSlug(IOTileCloudSlug):
    """``s--PPPP-PPPP--XXXX-XXXX-XXXX-XXXX--VVVV``: project (zeros or empty: any), device (zeros when
    virtual), variable."""

    _type = "s"

    def __init__(self, id: SlugLike | None = None) -> None:  # noqa: A002
        if isinstance(id, IOTileStreamSlug):
            self._slug = id._slug
            return
        if not id:  # None, "" or 0: an empty slug to fill with from_parts() (as 0.9.14)
            return
        if not isinstance(id, str):
            raise ValueError(f"Illegal stream slug {id!r}: must be a str")
        parts = gid_split(id.lower())
        if len(parts) != 4:
            raise ValueError(f"Illegal stream slug {id!r}: stream slug must have three terms: s--<prj>--<dev>--<var>")
        if parts[0] != "s":
            raise ValueError(f"Illegal stream slug {id!r}: expected the 's--' prefix")
        # An empty project (s----<dev>--<var>) is the wildcard project, as in 0.9.14.
        project = fix_gid(parts[1], 2) if parts[1] else "0000-0000"
        device = fix_gid(parts[2], 4) if parts[2] else int2did(0)
        self._slug = gid_join(["s", project, device, fix_gid(parts[3], 1)])

    def from_parts(
        self,
        project: SlugLike | None = None,
        device: SlugLike | None = None,
        variable: SlugLike | None = None,
    ) -> None:
        if variable is None:
            raise ValueError("A stream needs a variable")
        var = variable if isinstance(variable, IOTileVariableSlug) else IOTileVariableSlug(variable)
        pid = IOTileProjectSlug(project).formatted_id() if project not in (None, "") else "0000-0000"
        did = IOTileDeviceSlug(device).formatted_id() if device not in (None, "") else int2did(0)
        self._slug = gid_join(["s", pid, did, var.formatted_local_id()])

    def get_parts(self) -> dict[str, str]:
        if not self._slug:
            raise ValueError("Empty stream slug")
        _, pid, did, vid = gid_split(self._slug)
        return {
            "project": gid_join(["p", pid]),
            "device": gid_join(["d", did]),
            "variable": gid_join(["v", pid, vid]),
        }

    @classmethod
    def build(cls, project: SlugLike | None, device: SlugLike | None, variable: SlugLike) -> IOTileStreamSlug:
        """Typed shortcut for ``s = IOTileStreamSlug(); s.from_parts(...)``."""
        slug = cls()
        slug.from_parts(project=project, device=device, variable=variable)
        return slug
