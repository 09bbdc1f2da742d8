"""Built-in, read-only definitions: variable types and their units, sensor graphs, templates.

Variable types carry the original cloud's unit slugs and factors (``vartypes.json``). Sensor graphs
list the variables and streams that claiming a device creates in its project; ``sensor_graphs.json``
holds records of the original server's ``sg-data`` fixtures in its ``/sg/`` shapes (template ids
numbered in catalog order, ``o`` always 0.0 as its loader left it).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iotile_cloud.utils.mdo import MdoHelper

__all__ = [
    "CREATED_ON",
    "vartypes",
    "vartype",
    "input_unit",
    "output_unit",
    "Unit",
    "SENSOR_GRAPHS",
    "DEVICE_TEMPLATES",
    "PROJECT_TEMPLATES",
    "PROJECT_TEMPLATE_RECORDS",
    "ORG_TEMPLATE_RECORDS",
    "WELL_KNOWN_VARIABLES",
]


# When every built-in record says it was made (the original stamps the time it was installed).
CREATED_ON = "2018-01-01T00:00:00Z"


@dataclass(frozen=True)
class Unit:
    slug: str
    unit_full: str
    unit_short: str
    m: int
    d: int
    o: float
    decimal_places: int | None = None
    derived_units: Any = None

    @property
    def mdo(self) -> MdoHelper:
        return MdoHelper(self.m, self.d, self.o)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "slug": self.slug,
            "unit_full": self.unit_full,
            "unit_short": self.unit_short,
            "m": self.m,
            "d": self.d,
            "o": self.o,
        }
        if self.slug.startswith("out--"):
            out["decimal_places"] = self.decimal_places or 0
            out["derived_units"] = self.derived_units or {}
        return out


@functools.cache
def vartypes() -> dict[str, dict[str, Any]]:
    raw = json.loads((Path(__file__).parent / "vartypes.json").read_text())
    return {item["slug"]: item for item in raw}


def vartype(slug: str) -> dict[str, Any] | None:
    return vartypes().get(slug)


@functools.cache
def _units() -> dict[str, Unit]:
    units: dict[str, Unit] = {}
    for item in vartypes().values():
        for unit in item["available_input_units"] + item["available_output_units"]:
            units[unit["slug"]] = Unit(
                slug=unit["slug"],
                unit_full=unit["unit_full"],
                unit_short=unit["unit_short"],
                m=unit["m"],
                d=unit["d"],
                o=float(unit.get("o") or 0.0),
                decimal_places=unit.get("decimal_places"),
                derived_units=unit.get("derived_units"),
            )
    return units


def input_unit(slug: str | None) -> Unit | None:
    if not slug or not slug.startswith("in--"):
        return None
    return _units().get(slug)


def output_unit(slug: str | None) -> Unit | None:
    if not slug or not slug.startswith("out--"):
        return None
    return _units().get(slug)


def _var(template_id: int, lid: int, label: str, var_type: str, unit_in: str, unit_out: str) -> dict[str, Any]:
    return {
        "id": template_id,
        "label": label,
        "lid_hex": f"{lid:04x}",
        "derived_lid_hex": "",
        "var_type": var_type,
        "default_input_unit": unit_in,
        "default_output_unit": unit_out,
        "ctype": "unsigned int",
        "m": 1,
        "d": 1,
        "o": 0.0,
        "app_only": False,
        "web_only": False,
    }


@functools.cache
def _original_sensor_graphs() -> dict[str, dict[str, Any]]:
    raw = json.loads((Path(__file__).parent / "sensor_graphs.json").read_text())
    return {item["slug"]: item for item in raw}


def _local_sensor_graphs(originals: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Sensor graphs of this project that the original never had (the demo's greenhouse pod)."""
    vt = max(t["id"] for sg in originals.values() for t in sg["variable_templates"])
    return {
        "environmental-v1-0-0": {
            "id": len(originals) + 1,
            "name": "Environmental Sensor",
            "slug": "environmental-v1-0-0",
            "org": "arch-systems",
            "project_template": "default-template-v1-0-0",
            "variable_templates": [
                _var(vt + 1, 0x5001, "Temperature", "temp", "in--temp--pod1-m", "out--temp--celsius"),
                _var(
                    vt + 2,
                    0x5002,
                    "Humidity",
                    "relative-humidity",
                    "in--relative-humidity--centi-percent",
                    "out--relative-humidity--percent",
                ),
                _var(vt + 3, 0x5003, "Pressure", "pressure", "in--pressure--pascals", "out--pressure--hectopascals"),
            ],
            "display_widget_templates": [],
            "ui_extra": {},
            "report_processing_engine_ver": 0,
            "major_version": 1,
            "minor_version": 0,
            "patch_version": 0,
            "version": "v1.0.0",
            "app_tag": 0,
            "app_version": "v0.0",
            "created_on": CREATED_ON,
        }
    }


# Built-in sensor graphs by slug, in the original's shapes (``/sg/``): 25 of the original's
# ``sg-data`` fixtures (``sensor_graphs.json``), then this project's own.
SENSOR_GRAPHS: dict[str, dict[str, Any]] = {
    **_original_sensor_graphs(),
    **_local_sensor_graphs(_original_sensor_graphs()),
}

DEVICE_TEMPLATES: dict[str, dict[str, Any]] = {
    "internaltestingtemplate-v1-0-0": {"external_sku": "Internal Testing", "family": "Testing"},
    # The original mock cloud's default template.
    "internaltestingtemplate-v0-1-0": {
        "external_sku": "Internal Testing",
        "family": "Testing",
        "version": (0, 1, 0),
    },
    "1d1p2bt101es-v2-0-0": {"external_sku": "IOTile Water Meter Pod", "family": "POD-1"},
    "environmental-pod-v1-0-0": {"external_sku": "IOTile Environmental Pod", "family": "POD-1M"},
}


def _template(
    number: int, name: str, extra: dict[str, Any], org: str | None = "arch-systems", version: str = "1-0-0"
) -> dict[str, Any]:
    """A project (with ``org``) or org template (``org=None``) in the original's serializer shape."""
    body: dict[str, Any] = {"id": number, "name": name, "slug": f"{name.lower().replace(' ', '-')}-v{version}"}
    if org is not None:
        body["org"] = org
    body.update(version="v" + version.replace("-", "."), extra_data=extra, created_on=CREATED_ON)
    return body


def _pt_extra(page: str, waveform: bool = False) -> dict[str, Any]:
    return {"web": {"projectTemplateSlug": page}, "mobile": {"projectTemplateSlug": page, "waveform": waveform}}


# Taken as data from the original's pt-data/ and ot-data/ fixtures, in its ordering (name, version).
PROJECT_TEMPLATE_RECORDS = [
    _template(1, "Default Template", _pt_extra("default")),
    _template(2, "Factory Template", _pt_extra("default")),
    _template(3, "Shipping Template", _pt_extra("shipping", waveform=True)),
    _template(4, "Simple Template", _pt_extra("simple")),
]
ORG_TEMPLATE_RECORDS = [_template(1, "Default Template", {"web": {"orgTemplateSlug": "default"}}, org=None)]
PROJECT_TEMPLATES = tuple(template["slug"] for template in PROJECT_TEMPLATE_RECORDS)

# Names for variables that reports create on the fly (reports.md, "well-known cloud variables").
WELL_KNOWN_VARIABLES: dict[int, str] = {
    0x5800: "Battery",
    0x5C00: "Reboot",
    0x5C01: "BLE Connect",
    0x5C02: "BLE Disconnect",
    0x5C08: "OS Tag and Version",
    0x5C09: "App Tag and Version",
    0x5A05: "Complete Report",
    0x5A06: "Chopped Report",
    0x0E00: "Trip Start",
    0x0E01: "Trip End",
    0x0E02: "Trip Pause/Resume",
}
