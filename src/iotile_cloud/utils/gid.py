"""IOTile global ids (gids) and slugs, shared by the client, the CLI and the server.

A gid is lowercase hex in 4-digit groups joined by ``-``; a slug is a one-letter type followed by
gids joined by ``--`` (``p--0000-0005``, ``s--0000-0005--0000-0000-0000-000a--5001``).
Missing leading groups are zero padded, so ``d--1234`` is ``d--0000-0000-0000-1234``.

Every constructor raises :class:`ValueError` with a readable message for malformed input.
"""

from __future__ import annotations

import re
from typing import Any, Union

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
    if not isinstance(val, str):
        raise ValueError(f"Expected a slug string, got {val!r}")
    parts = val.split("--")
    if len(parts) < 2:
        raise ValueError(f"Illegal slug {val!r}: expected '<type>--<id>'")
    return parts


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


def _plain_int(value: Any) -> bool:
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
    """Base class: a slug string of the form ``<type>--<gid>[--<gid>...]``."""

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

    def _set_single(self, type_: str, terms: int, text: str) -> None:
        parts = gid_split(text.lower())
        if parts[0] != type_:
            raise ValueError(f"Illegal slug {text!r}: expected the '{type_}--' prefix")
        if len(parts) != 2:
            raise ValueError(f"Illegal slug {text!r}: expected '{type_}--' and one id")
        self._slug = gid_join([type_, fix_gid(parts[1], terms)])


SlugLike = Union[str, int, IOTileCloudSlug]


class IOTileProjectSlug(IOTileCloudSlug):
    """``p--XXXX-XXXX``: from an int, ``p--`` slug (short forms padded), bare hex, or another slug."""

    _type = "p"

    def __init__(self, id: SlugLike) -> None:  # noqa: A002 - original argument name
        if isinstance(id, IOTileProjectSlug):
            self._slug = id._slug
        elif _plain_int(id):
            self._slug = gid_join(["p", int2pid(id)])  # type: ignore[arg-type]
        elif isinstance(id, str):
            if "--" in id:
                self._set_single("p", 2, id)
            else:
                self._slug = gid_join(["p", fix_gid(id, 2)])
        else:
            raise ValueError(f"Illegal project id {id!r}")

    def get_id(self) -> int:
        return gid2int(self.formatted_id())


class IOTileDeviceSlug(IOTileCloudSlug):
    """``d--BBBB-XXXX-XXXX-XXXX``: block 0000 for a live device.

    Ints up to 64 bits are kept whole (the original truncated them to 48 bits); with
    ``allow_64bits=False`` anything over 48 bits is refused.
    """

    _type = "d"

    def __init__(self, id: SlugLike, allow_64bits: bool = True) -> None:  # noqa: A002
        bits = 64 if allow_64bits else 48
        if isinstance(id, IOTileDeviceSlug):
            self._slug = id._slug
            return
        if isinstance(id, IOTileBlockSlug):
            self._slug = gid_join(["d", int2did(id.get_id())])
            return
        if _plain_int(id):
            value = int(id)  # type: ignore[arg-type]
            if value < 0 or value >= 1 << bits:
                raise ValueError(f"Illegal device id {value}: must fit in {bits} bits")
            self._slug = gid_join(["d", int2did(value)])
            return
        if not isinstance(id, str):
            raise ValueError(f"Illegal device id {id!r}")
        if "--" in id:
            self._set_single("d", 4, id)
            if not allow_64bits and self.get_id() >= 1 << 48:
                raise ValueError(f"Illegal device id {id!r}: must fit in 48 bits")
            return
        self._slug = gid_join(["d", int2did(_hex_to_int(id, bits, "device"))])

    def get_id(self) -> int:
        return gid2int(self.formatted_id())


class IOTileFleetSlug(IOTileCloudSlug):
    """``g--XXXX-XXXX-XXXX`` (48 bits)."""

    _type = "g"

    def __init__(self, id: SlugLike) -> None:  # noqa: A002
        if isinstance(id, IOTileFleetSlug):
            self._slug = id._slug
        elif _plain_int(id):
            self._slug = gid_join(["g", int2fid(id)])  # type: ignore[arg-type]
        elif isinstance(id, str):
            if "--" in id:
                self._set_single("g", 3, id)
            else:
                self._slug = gid_join(["g", int2fid(_hex_to_int(id, 48, "fleet"))])
        else:
            raise ValueError(f"Illegal fleet id {id!r}")

    def get_id(self) -> int:
        return gid2int(self.formatted_id())


class IOTileBlockSlug(IOTileCloudSlug):
    """``b--BBBB-XXXX-XXXX-XXXX``: data block ``BBBB`` of device ``XXXX-XXXX-XXXX``."""

    _type = "b"

    def __init__(self, id: SlugLike, block: int = 0) -> None:  # noqa: A002
        if isinstance(id, IOTileBlockSlug):
            self._slug = id._slug
            return
        if isinstance(id, str) and id.lower().startswith("b--"):
            self._set_single("b", 4, id)
            return
        if not _plain_int(block) or not 0 <= block <= 0xFFFF:
            raise ValueError(f"Illegal block number {block!r}: must be 0..65535")
        device = IOTileDeviceSlug(id, allow_64bits=False)
        self._slug = gid_join(["b", fix_gid(f"{block:04x}-" + int48gid(device.get_id()), 4)])

    def get_id(self) -> int:
        """The device id (48 bits) this block belongs to."""
        return gid2int(self.formatted_id()) & 0xFFFFFFFFFFFF

    def get_block(self) -> int:
        return gid2int(self.formatted_id()) >> 48


class IOTileStreamerSlug(IOTileCloudSlug):
    """``t--XXXX-XXXX-XXXX-XXXX--IIII``: streamer ``index`` of a device."""

    _type = "t"

    def __init__(self, device: SlugLike, index: int | None = None) -> None:
        if isinstance(device, IOTileStreamerSlug):
            self._slug = device._slug
            return
        if isinstance(device, str) and device.lower().startswith("t--") and index is None:
            parts = gid_split(device.lower())
            if len(parts) != 3:
                raise ValueError(f"Illegal streamer slug {device!r}: expected 't--<device>--<index>'")
            self._slug = gid_join(["t", fix_gid(parts[1], 4), fix_gid(parts[2], 1)])
            return
        if index is None or not _plain_int(index) or not 0 <= index <= 0xFFFF:
            raise ValueError(f"Illegal streamer index {index!r}: must be 0..65535")
        dev = device if isinstance(device, IOTileDeviceSlug) else IOTileDeviceSlug(device)
        self._slug = gid_join(["t", dev.formatted_id(), int16gid(index)])

    def get_device(self) -> str:
        return gid_join(["d", gid_split(self._slug)[1]])

    def get_index(self) -> str:
        return gid_split(self._slug)[2]


class IOTileVariableSlug(IOTileCloudSlug):
    """``v--PPPP-PPPP--VVVV``: local variable id ``VVVV`` within a project (zeros for none)."""

    _type = "v"

    def __init__(self, id: SlugLike, project: SlugLike | None = None) -> None:  # noqa: A002
        if isinstance(id, IOTileVariableSlug):
            self._slug = id._slug
            return
        if isinstance(id, str) and "--" in id:
            parts = gid_split(id.lower())
            if parts[0] != "v" or len(parts) != 3:
                raise ValueError(f"Illegal variable slug {id!r}: expected 'v--<project>--<local id>'")
            self._slug = gid_join(["v", fix_gid(parts[1], 2), fix_gid(parts[2], 1)])
            return
        if _plain_int(id):
            lid = int2vid(id)  # type: ignore[arg-type]
        elif isinstance(id, str):
            lid = int2vid(_hex_to_int(id, 16, "variable"))
        else:
            raise ValueError(f"Illegal variable id {id!r}")
        pid = IOTileProjectSlug(project).formatted_id() if project not in (None, "") else "0000-0000"
        self._slug = gid_join(["v", pid, lid])

    def formatted_local_id(self) -> str:
        return gid_split(self._slug)[2]

    def get_lid(self) -> int:
        return int(self.formatted_local_id(), 16)

    def get_project_slug(self) -> IOTileProjectSlug:
        return IOTileProjectSlug(gid_split(self._slug)[1])


class IOTileStreamSlug(IOTileCloudSlug):
    """``s--PPPP-PPPP--BBBB-DDDD-DDDD-DDDD--VVVV``: project, device (zeros when virtual), variable."""

    _type = "s"

    def __init__(self, id: SlugLike | None = None) -> None:  # noqa: A002
        if id is None:
            return
        if isinstance(id, IOTileStreamSlug):
            self._slug = id._slug
            return
        if not isinstance(id, str):
            raise ValueError(f"Illegal stream slug {id!r}")
        parts = gid_split(id.lower())
        if parts[0] != "s":
            raise ValueError(f"Illegal stream slug {id!r}: expected the 's--' prefix")
        if len(parts) != 4:
            raise ValueError(f"Illegal stream slug {id!r}: stream slug must have three terms: s--<prj>--<dev>--<var>")
        self._slug = gid_join(["s", fix_gid(parts[1], 2), fix_gid(parts[2], 4), fix_gid(parts[3], 1)])

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
