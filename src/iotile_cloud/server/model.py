"""Domain operations shared by several routes and by report ingest: variables, streams, values."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from iotile_cloud.server import catalog, db
from iotile_cloud.server.catalog import registry
from iotile_cloud.utils.gid import int2did, int2pid
from iotile_cloud.utils.mdo import MdoHelper, display_value, fixed_point_texts

RAW_FORMATS = ("<L", "<l", "<H", "<h", "<f", "<B", "<b", "<Q", "<q")
# A variable template's C type as a raw value format; the original's "auto" has no local meaning.
CTYPE_RAW_FORMATS = {"int": "<l", "unsigned int": "<L"}


def stream_slug(project_gid: int, device_id: int | None, lid: int) -> str:
    return f"s--{int2pid(project_gid)}--{int2did(device_id or 0)}--{lid:04x}"


def lock_project_schema(conn: Connection, project: Row[Any]) -> None:
    """Serialise creating a project's variables and streams across workers.

    Two devices of one project uploading their first reports at once would otherwise both create
    variable 5001, and the loser's transaction would fail on the unique constraint.
    """
    db.serialize_on(conn, f"project-schema:{project.id}")


def create_variable(
    conn: Connection,
    project: Row[Any],
    lid: int,
    name: str,
    *,
    var_type: str | None = None,
    input_unit: str | None = None,
    output_unit: str | None = None,
    about: str = "",
    units: str = "",
    raw_value_format: str = "<L",
    m: int = 1,
    d: int = 1,
    o: float = 0.0,
    decimal_places: int = 2,
    app_only: bool = False,
    web_only: bool = False,
    user_id: int | None = None,
) -> Row[Any]:
    variable_id = str(uuid.uuid4())
    conn.execute(
        sa.insert(db.variables).values(
            id=variable_id,
            project_id=project.id,
            lid=lid,
            name=name,
            var_type=var_type,
            input_unit=input_unit,
            output_unit=output_unit,
            about=about,
            units=units,
            raw_value_format=raw_value_format,
            multiplication_factor=m,
            division_factor=d,
            offset=o,
            decimal_places=decimal_places,
            app_only=app_only,
            web_only=web_only,
            created_on=db.now_us(),
            created_by=user_id,
        )
    )
    return conn.execute(sa.select(db.variables).where(db.variables.c.id == variable_id)).one()


def create_stream(
    conn: Connection,
    project: Row[Any],
    variable: Row[Any],
    device_id: int | None,
    data_label: str = "",
    user_id: int | None = None,
) -> Row[Any]:
    """A stream takes its units, value format and MDO from its variable."""
    stream_id = str(uuid.uuid4())
    conn.execute(
        sa.insert(db.streams).values(
            id=stream_id,
            slug=stream_slug(project.gid, device_id, variable.lid),
            project_id=project.id,
            device_id=device_id or None,
            variable_id=variable.id,
            data_label=data_label,
            var_type=variable.var_type,
            input_unit=variable.input_unit,
            output_unit=variable.output_unit,
            raw_value_format=variable.raw_value_format,
            mdo_type="S",
            multiplication_factor=variable.multiplication_factor,
            division_factor=variable.division_factor,
            offset=variable.offset,
            enabled=True,
            created_on=db.now_us(),
            created_by=user_id,
        )
    )
    return conn.execute(sa.select(db.streams).where(db.streams.c.id == stream_id)).one()


def variable_for(
    conn: Connection, project: Row[Any], lid: int, template: dict[str, Any] | None = None, user_id: int | None = None
) -> Row[Any]:
    """The project's variable ``lid``, created from a sensor-graph template or as a plain one."""
    query = sa.select(db.variables).where(db.variables.c.project_id == project.id, db.variables.c.lid == lid)
    row = conn.execute(query).first()
    if row is not None:
        return row
    lock_project_schema(conn, project)
    row = conn.execute(query).first()  # another worker may have made it while we waited
    if row is not None:
        return row
    if template is not None:
        # As the original: the template's units and MDO, its C type as the raw value format, and
        # two decimal places whatever the output unit says.
        return create_variable(
            conn,
            project,
            lid,
            template["label"],
            var_type=template["var_type"],
            input_unit=template.get("default_input_unit") or None,
            output_unit=template.get("default_output_unit") or None,
            raw_value_format=CTYPE_RAW_FORMATS.get(template.get("ctype", "unsigned int"), "<L"),
            m=template.get("m", 1),
            d=template.get("d", 1),
            o=template.get("o", 0.0),
            decimal_places=2,
            app_only=template.get("app_only", False),
            web_only=template.get("web_only", False),
            user_id=user_id,
        )
    name = catalog.WELL_KNOWN_VARIABLES.get(lid, f"Stream {lid:04x}")
    return create_variable(conn, project, lid, name, var_type="default", user_id=user_id)


def stream_for(conn: Connection, project: Row[Any], device_id: int, lid: int, user_id: int | None = None) -> Row[Any]:
    """The device's stream for ``lid`` in its project, created on first use (reports do this)."""
    slug = stream_slug(project.gid, device_id, lid)
    query = sa.select(db.streams).where(db.streams.c.slug == slug)
    row = conn.execute(query).first()
    if row is not None:
        return row
    lock_project_schema(conn, project)
    row = conn.execute(query).first()  # another worker may have made it while we waited
    if row is not None:
        return row
    return create_stream(conn, project, variable_for(conn, project, lid, user_id=user_id), device_id, user_id=user_id)


def apply_sensor_graph(conn: Connection, device: Row[Any], project: Row[Any], user_id: int) -> None:
    """Claiming a device creates its sensor graph's project variables and device streams."""
    sg = registry.entry(conn, "sg", device.sg) if device.sg else None
    if sg is None:
        return
    lock_project_schema(conn, project)
    for template in sg["variable_templates"]:
        variable = variable_for(conn, project, int(template["lid_hex"], 16), template, user_id)
        slug = stream_slug(project.gid, device.id, variable.lid)
        if conn.execute(sa.select(db.streams.c.pk).where(db.streams.c.slug == slug)).first() is None:
            create_stream(conn, project, variable, device.id, user_id=user_id)


# -- values -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Converter:
    """The MDO value pipeline of one stream (server-api.md, "Value conversion")."""

    raw_format: str
    stream_mdo: MdoHelper
    input_mdo: MdoHelper | None
    output_mdo: MdoHelper | None
    decimal_places: int

    @classmethod
    def for_stream(cls, stream: Row[Any], variable: Any) -> Converter:
        """``variable``: its row, or anything with its factors and decimal places."""
        if stream.mdo_type == "V":
            m, d, o = variable.multiplication_factor, variable.division_factor, variable.offset
        else:
            m, d, o = stream.multiplication_factor, stream.division_factor, stream.offset
        unit_in = catalog.input_unit(stream.input_unit)
        unit_out = catalog.output_unit(stream.output_unit)
        return cls(
            raw_format=stream.raw_value_format or "<L",
            stream_mdo=MdoHelper(m or 1, d or 1, o or 0.0),
            input_mdo=unit_in.mdo if unit_in else None,
            output_mdo=unit_out.mdo if unit_out else None,
            decimal_places=variable.decimal_places,
        )

    def reinterpret(self, int_value: int) -> float:
        """The raw u32 read with the stream's struct format (``<L`` unsigned by default)."""
        if self.raw_format == "<L":
            return float(int_value)
        packed = struct.pack("<l" if int_value < 0 else "<L", int_value)
        size = struct.calcsize(self.raw_format)
        packed = (packed + b"\x00" * 8)[:size]
        value = struct.unpack(self.raw_format, packed)[0]
        return float(value)

    def value(self, int_value: int) -> tuple[float, str]:
        """(internal value, type): ``ITR`` when an input unit converted it, else ``Num``."""
        value = self.stream_mdo.compute(self.reinterpret(int_value))
        if self.input_mdo is not None:
            return self.input_mdo.compute(value), "ITR"
        return value, "Num"

    def values(self, raw: Any) -> tuple[Any, str]:
        """:meth:`value` for a numpy array of raw ints (the same float operations, vectorised)."""
        raw = np.asarray(raw, dtype=np.int64)
        if self.raw_format == "<L":
            value = raw.astype(np.float64)
        else:
            low = (raw & 0xFFFFFFFF).astype(np.uint32)
            size = struct.calcsize(self.raw_format)
            widths = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
            value = low.astype(widths[size]).view(np.dtype(self.raw_format)).astype(np.float64)
        value = self.stream_mdo.compute(value)
        if self.input_mdo is not None:
            return self.input_mdo.compute(value), "ITR"
        return value, "Num"

    def output(self, value: float | None) -> float | None:
        if value is None or self.output_mdo is None:
            return None
        return float(self.output_mdo.compute(value))

    def outputs(self, values: list[float | None]) -> list[float | None]:
        """:meth:`output` for a whole page (nulls stay null)."""
        if self.output_mdo is None:
            return [None] * len(values)
        compute = self.output_mdo.compute
        if None not in values:  # the usual page: one vectorised computation (the same float operations)
            computed: list[float | None] = compute(np.array(values, dtype=np.float64)).tolist()
            return computed
        return [None if v is None else float(compute(v)) for v in values]

    def page_outputs(self, values: np.ndarray, nulls: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """``output_value`` (NaN where there is none: a null value, or no output unit) and
        ``display_value`` (empty for a null value) of many points at once: the same numbers and
        texts as :meth:`output` and :meth:`display` one by one."""
        shown = values if self.output_mdo is None else self.output_mdo.compute(values)
        texts = fixed_point_texts(shown, self.decimal_places)
        for index in np.flatnonzero(nulls).tolist():
            texts[index] = ""
        if self.output_mdo is None:
            return np.full(len(values), np.nan), texts
        return np.where(nulls, np.nan, shown), texts

    def display(self, output: float | None, value: float | None) -> str:
        return display_value(output, value, self.decimal_places)


def converter(conn: Connection, stream: Row[Any]) -> Converter:
    variable = conn.execute(sa.select(db.variables).where(db.variables.c.id == stream.variable_id)).one()
    return Converter.for_stream(stream, variable)
