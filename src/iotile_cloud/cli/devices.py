"""``iotile-cloud device ...``: register, claim and manage devices."""

from __future__ import annotations

import click

from iotile_cloud.api.exceptions import HttpForbiddenError, RestBaseException
from iotile_cloud.cli.common import (
    Group,
    change_one,
    domain_option,
    friendly_errors,
    json_option,
    list_rows,
    logged_in_client,
    project_id,
)
from iotile_cloud.cli.resources import Field, Resource, delete_command, show_command, show_result, update_command

COLUMNS = ("slug", "label", "sg", "project", "org", "active")
DEVICE = Resource("device", "device")
DEFAULT_TEMPLATE = "1d1p2bt101es-v2-0-0"
REGISTER_REFUSED = (
    "The server refused to register the device ({answer}). On the original IOTile Cloud only staff register "
    "devices (with ?staff=1: give --staff). On a local server, make your account its owner: "
    "`iotile-cloud admin create-user EMAIL --owner` or `iotile-cloud admin set-owner EMAIL`."
)


@click.group(cls=Group)
def device() -> None:
    """Register, claim and manage devices."""


@device.command("list")
@click.option("--project", "project_ref", default=None, help="Only devices of this project (uuid, p-- slug or name)")
@click.option("--org", default=None, help="Only devices of this organisation (slug)")
@click.option("--all", "all_devices", is_flag=True, help="Inactive devices too")
@domain_option
@json_option
def device_list(project_ref: str | None, org: str | None, all_devices: bool, domain: str | None, as_json: bool) -> None:
    """List the devices of your organisations."""
    project = project_id(logged_in_client(domain), project_ref) if project_ref else None
    list_rows(domain, "device/", COLUMNS, as_json, project=project, org__slug=org, all="1" if all_devices else None)


show_command(device, DEVICE, "Show one device (d-- slug, or its number in hex such as 0x2a).")


@device.command("create")
@click.option("--sg", required=True, help="Sensor graph, e.g. water-meter-v1-1-0 (`iotile-cloud api sg/`)")
@click.option("--label", default="", help="A name for the device")
@click.option("--template", default=DEFAULT_TEMPLATE, show_default=True, help="Device template (`api dt/`)")
@click.option("--project", "project_ref", default=None, help="Claim it into this project at once")
@click.option("--slug", default=None, help="Register this device id (d--...) rather than the next free one")
@click.option("--staff", is_flag=True, help="Act as staff (?staff=1), as the original server requires")
@domain_option
@json_option
def device_create(
    sg: str,
    label: str,
    template: str,
    project_ref: str | None,
    slug: str | None,
    staff: bool,
    domain: str | None,
    as_json: bool,
) -> None:
    """Register a new device from a sensor graph (the local server's owner, or staff)."""
    client = logged_in_client(domain)
    body = {"label": label, "template": template, "sg": sg, **({"slug": slug} if slug else {})}
    project = project_id(client, project_ref) if project_ref else None
    with friendly_errors():
        try:
            created = client.post("device/", body, **({"staff": 1} if staff else {}))
        except HttpForbiddenError as error:
            raise click.ClickException(REGISTER_REFUSED.format(answer=error.detail)) from None
        where = " (unclaimed: `iotile-cloud device claim` puts it in a project)"
        if project:
            try:
                claimed = client.post("device/claim/", {"device": created["slug"], "project": project})
            except RestBaseException as error:
                raise click.ClickException(
                    f"Registered {created['slug']} but could not claim it ({error}): "
                    f"iotile-cloud device claim {created['slug']} --project {project_ref}"
                ) from None
            created = client.get(f"device/{created['slug']}/")
            where = f", claimed into {claimed['project']}"
    show_result(created, as_json, lambda r: f"Registered device {r['slug']} ({r['label']}, sensor graph {sg}){where}")


update_command(
    device,
    DEVICE,
    "Change a device's label, state or location (org members), e.g. -F lat=45.5 -F lon=-122.6.",
    [Field("label"), Field("active", "--active/--inactive")],
)
delete_command(
    device,
    DEVICE,
    "Delete a device (staff only, as on the original; owners unclaim instead).",
    "Delete this device?",
    staff_help="Act as staff (?staff=1): the API lets only staff delete devices",
)


@device.command("claim")
@click.argument("slug")
@click.option("--project", "project_ref", required=True, help="The project (uuid, p-- slug or name)")
@domain_option
@json_option
def device_claim(slug: str, project_ref: str, domain: str | None, as_json: bool) -> None:
    """Claim an unclaimed device into one of your projects (org admins)."""
    project = project_id(logged_in_client(domain), project_ref)
    answer = change_one(domain, "POST", "device/claim/", "device", slug, {"device": slug, "project": project})
    show_result(answer, as_json, lambda r: f"Claimed {r.get('device', slug)} into {r.get('project', project_ref)}")


@device.command("unclaim")
@click.argument("slug")
@click.option("--clean-streams", is_flag=True, help="Also delete its streams and their data")
@click.option("--label", default=None, help="A new label for the released device")
@domain_option
@json_option
def device_unclaim(slug: str, clean_streams: bool, label: str | None, domain: str | None, as_json: bool) -> None:
    """Release a device from its project (org admins)."""
    body = {"clean_streams": clean_streams, **({"label": label} if label else {})}
    answer = change_one(domain, "POST", f"device/{slug}/unclaim/", "device", slug, body)
    show_result(answer, as_json, lambda r: f"Unclaimed {r.get('unclaimed', slug)}")
