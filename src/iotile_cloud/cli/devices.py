"""``iotile-cloud device ...``: register, claim and manage devices."""

from __future__ import annotations

import click

from iotile_cloud.api.exceptions import HttpForbiddenError, RestBaseException
from iotile_cloud.cli.common import (
    Group,
    change_one,
    domain_option,
    field_options,
    friendly_errors,
    json_option,
    list_rows,
    logged_in_client,
    parse_fields,
    project_id,
    show_one,
    show_record,
)

COLUMNS = ("slug", "label", "sg", "project", "org", "active")
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


@device.command("show")
@click.argument("slug")
@domain_option
@json_option
def device_show(slug: str, domain: str | None, as_json: bool) -> None:
    """Show one device (d-- slug, or its number in hex such as 0x2a)."""
    show_one(domain, f"device/{slug}/", "device", slug, as_json)


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
    if as_json:
        show_record(created, True)
        return
    click.echo(f"Registered device {created['slug']} ({created['label']}, sensor graph {sg}){where}")


@device.command("update")
@click.argument("slug")
@click.option("--label", default=None)
@click.option("--active/--inactive", default=None)
@field_options
@domain_option
@json_option
def device_update(
    slug: str,
    label: str | None,
    active: bool | None,
    raw: tuple[str, ...],
    typed: tuple[str, ...],
    domain: str | None,
    as_json: bool,
) -> None:
    """Change a device's label, state or location (org members), e.g. -F lat=45.5 -F lon=-122.6."""
    body = {**parse_fields(raw, typed), **{k: v for k, v in (("label", label), ("active", active)) if v is not None}}
    if not body:
        raise click.UsageError("nothing to change: give --label, --active/--inactive or -f key=value")
    show_record(change_one(domain, "PATCH", f"device/{slug}/", "device", slug, body), as_json)


@device.command("delete")
@click.argument("slug")
@click.option("--staff", is_flag=True, help="Act as staff (?staff=1): the API lets only staff delete devices")
@click.confirmation_option(prompt="Delete this device?")
@domain_option
def device_delete(slug: str, staff: bool, domain: str | None) -> None:
    """Delete a device (staff only, as on the original; owners unclaim instead)."""
    change_one(domain, "DELETE", f"device/{slug}/", "device", slug, None, **({"staff": 1} if staff else {}))
    click.echo(f"Deleted device {slug}")


@device.command("claim")
@click.argument("slug")
@click.option("--project", "project_ref", required=True, help="The project (uuid, p-- slug or name)")
@domain_option
@json_option
def device_claim(slug: str, project_ref: str, domain: str | None, as_json: bool) -> None:
    """Claim an unclaimed device into one of your projects (org admins)."""
    project = project_id(logged_in_client(domain), project_ref)
    answer = change_one(domain, "POST", "device/claim/", "device", slug, {"device": slug, "project": project})
    if as_json:
        show_record(answer, True)
    else:
        click.echo(f"Claimed {answer.get('device', slug)} into {answer.get('project', project_ref)}")


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
    if as_json:
        show_record(answer, True)
    else:
        click.echo(f"Unclaimed {answer.get('unclaimed', slug)}")
