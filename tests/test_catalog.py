"""The built-in sensor-graph catalog: the original's records and shapes, and what registering a device
from one of them creates (its variables and streams, from the variable templates)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from iotile_cloud.api.connection import Api
from iotile_cloud.cli.app import main
from iotile_cloud.server import catalog, db
from iotile_cloud.testing.cloud import CloudHelper

from .conftest import USER

# The original's SensorGraphSerializer and its nested read-only serializers (app_*_version are write-only).
SG_FIELDS = {
    "id",
    "name",
    "slug",
    "org",
    "project_template",
    "variable_templates",
    "display_widget_templates",
    "ui_extra",
    "report_processing_engine_ver",
    "major_version",
    "minor_version",
    "patch_version",
    "version",
    "app_tag",
    "app_version",
    "created_on",
}
TEMPLATE_FIELDS = {
    "id",
    "label",
    "lid_hex",
    "derived_lid_hex",
    "var_type",
    "default_input_unit",
    "default_output_unit",
    "ctype",
    "m",
    "d",
    "o",
    "app_only",
    "web_only",
}
WIDGET_FIELDS = {
    "id",
    "label",
    "lid_hex",
    "type",
    "args",
    "var_type",
    "derived_unit_type",
    "show_in_app",
    "show_in_web",
}


def _owner(cloud: CloudHelper) -> None:
    with cloud.engine.begin() as conn:
        conn.execute(sa.update(db.users).where(db.users.c.email == USER[0]).values(is_owner=True))


def test_sensor_graph_list_has_the_original_records_and_shapes(api: Api) -> None:
    first = api.sg.get(page_size=10)
    assert first["count"] == 26 and len(first["results"]) == 10 and first["next"] and first["previous"] is None
    every = api.sg.get(page_size=100)["results"]
    slugs = [sg["slug"] for sg in every]
    assert len(slugs) == len(set(slugs)) == 26
    names = [(sg["name"].casefold(), sg["major_version"], sg["minor_version"], sg["patch_version"]) for sg in every]
    assert names == sorted(names)  # the original's ordering: name, then version
    for sg in every:
        assert set(sg) == SG_FIELDS, sg["slug"]
        for template in sg["variable_templates"]:
            assert set(template) == TEMPLATE_FIELDS, (sg["slug"], template)
        for widget in sg["display_widget_templates"]:
            assert set(widget) == WIDGET_FIELDS, (sg["slug"], widget)
    shipping = api.sg("shipping-v2-3-0").get()
    assert (shipping["app_tag"], shipping["app_version"], shipping["version"]) == (2049, "v1.3", "v2.3.0")
    assert shipping["report_processing_engine_ver"] == 2 and shipping["org"] == "arch-systems"
    assert shipping["project_template"] == "shipping-template-v1-0-0"
    by_lid = {t["lid_hex"]: t for t in shipping["variable_templates"]}
    assert [t["lid_hex"] for t in shipping["variable_templates"]] == sorted(by_lid)
    assert by_lid["5023"]["ctype"] == "int" and by_lid["5023"]["default_input_unit"] == "in--temp--pod1-m"
    assert by_lid["5020"]["default_input_unit"] is None and by_lid["5020"]["var_type"] == "pod-1m-accelerometer"
    assert by_lid["0e00"]["ctype"] == "unsigned int" and by_lid["0e00"]["derived_lid_hex"] == ""
    shock = next(w for w in shipping["display_widget_templates"] if w["label"] == "Shock Event")
    assert shock["type"] == "val" and shock["args"]["web"]["options"]["ngComponent"] == "EventTable"
    assert shipping["ui_extra"]["analysis"]["trip_summary"]["consts"]["delta_v_multiplier"] == 39.37
    water = api.sg("water-meter-v1-1-0").get()
    assert (water["app_tag"], water["app_version"], water["report_processing_engine_ver"]) == (1027, "v0.0", 0)
    assert water["ui_extra"]["web"] == {"pageTemplateSlug": "water"}
    assert api.sg("gyarados-well-pump-cap-sense-2060-v0-1-0").get()["org"] == "welldone"


def test_every_template_names_known_variable_types_and_units() -> None:
    """A claim would otherwise create variables whose units the server cannot convert with."""
    for slug, sg in catalog.SENSOR_GRAPHS.items():
        for template in sg["variable_templates"]:
            kind = catalog.vartype(template["var_type"])
            assert kind is not None, (slug, template["var_type"])
            units = {u["slug"] for u in kind["available_input_units"] + kind["available_output_units"]}
            for unit in (template["default_input_unit"], template["default_output_unit"]):
                assert unit is None or unit in units, (slug, unit)
        for widget in sg["display_widget_templates"]:
            assert catalog.vartype(widget["var_type"]) is not None, (slug, widget["var_type"])


@pytest.mark.parametrize(
    "sg",
    ["environmental-2052-v1-0-0", "shipping-v2-3-0", "pulse-counter-2056-v2-1-0", "double-soil-moisture-v2-0-0"],
)
def test_claiming_a_device_creates_the_sensor_graph_variables(cloud: CloudHelper, api: Api, sg: str) -> None:
    _owner(cloud)
    org = api.org.post({"name": "Field"})["slug"]
    project = api.project.post({"name": "Plot", "org": org})
    device = api.device.post({"label": "Pod", "sg": sg, "template": "internaltestingtemplate-v1-0-0"})["slug"]
    assert api.device.claim.post({"device": device, "project": project["id"]})["device"] == device
    templates = {int(t["lid_hex"], 16): t for t in api.sg(sg).get()["variable_templates"]}
    variables = {v["lid"]: v for v in api.variable.get(project=project["id"], page_size=100)["results"]}
    assert set(variables) == set(templates)
    for lid, template in templates.items():
        variable = variables[lid]
        assert variable["name"] == template["label"] and variable["var_type"] == template["var_type"]
        assert (variable["input_unit"] or {}).get("slug") == template["default_input_unit"]
        assert (variable["output_unit"] or {}).get("slug") == template["default_output_unit"]
        assert variable["raw_value_format"] == ("<l" if template["ctype"] == "int" else "<L")
        assert variable["decimal_places"] == 2
        assert (variable["app_only"], variable["web_only"]) == (template["app_only"], template["web_only"])
    streams = api.stream.get(device=device, page_size=100)["results"]
    assert sorted(int(s["slug"][-4:], 16) for s in streams) == sorted(templates)


def test_a_signed_temperature_through_the_original_units(cloud: CloudHelper, api: Api) -> None:
    """Environmental 2052 reads its temperature as a signed int in hundredths of a degree (POD1-M unit)."""
    _owner(cloud)
    org = api.org.post({"name": "Cold store"})["slug"]
    project = api.project.post({"name": "Freezer", "org": org})
    device = api.device.post({"sg": "environmental-2052-v1-0-0", "template": "internaltestingtemplate-v1-0-0"})["slug"]
    api.device.claim.post({"device": device, "project": project["id"]})
    stream = f"s--{project['slug'][3:]}--{device[3:]}--5023"
    raw = (1 << 32) - 500  # -5.00 C as the device's u32 register
    api.data.post({"stream": stream, "timestamp": "2026-01-05T10:00:00Z", "int_value": raw})
    point = api.data.get(filter=stream)["results"][0]
    assert point["type"] == "ITR" and point["value"] == pytest.approx(268.15)  # stored in Kelvin


def test_cli_device_create_from_a_sensor_graph(cloud: CloudHelper, api: Api) -> None:
    _owner(cloud)
    org = api.org.post({"name": "Counters"})["slug"]
    project = api.project.post({"name": "Line 1", "org": org})
    runner = CliRunner()
    login = ["login", "--domain", cloud.url, "--email", USER[0], "--password", USER[1]]
    assert runner.invoke(main, login, catch_exceptions=False).exit_code == 0
    create = ["device", "create", "--sg", "smema-pulse-counter-2059-v1-2-0", "--project", project["slug"], "--json"]
    result = runner.invoke(main, create, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    device = json.loads(result.output)["slug"]
    streams = api.stream.get(device=device)["results"]
    assert sorted(s["slug"][-4:] for s in streams) == ["5050", "5051"]
    result = runner.invoke(main, ["device", "create", "--sg", "no-such-sg-v1-0-0"], catch_exceptions=False)
    assert result.exit_code == 1 and "Object with slug=no-such-sg-v1-0-0 does not exist." in result.output
