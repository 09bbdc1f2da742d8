"""``iotile-cloud fleet ...``: fleets (named groups of devices in an organisation)."""

from __future__ import annotations

import click

from iotile_cloud.cli.common import Group, change_one, domain_option, json_option, list_rows
from iotile_cloud.cli.resources import Field, Resource, delete_command, show_command, show_result, update_command

COLUMNS = ("slug", "name", "org", "is_network", "description")
FLEET = Resource("fleet", "fleet")


@click.group(cls=Group)
def fleet() -> None:
    """Fleets: named groups of devices."""


@fleet.command("list")
@click.option("--org", default=None, help="Only fleets of this organisation (slug)")
@click.option("--device", default=None, help="Only fleets holding this device (d-- slug)")
@domain_option
@json_option
def fleet_list(org: str | None, device: str | None, domain: str | None, as_json: bool) -> None:
    """List the fleets of your organisations."""
    list_rows(domain, "fleet/", COLUMNS, as_json, org=org, device=device)


show_command(fleet, FLEET, "Show one fleet (by its g-- slug).")


@fleet.command("create")
@click.argument("name")
@click.option("--org", required=True, help="The organisation (slug)")
@click.option("--description", default=None)
@click.option("--network", is_flag=True, help="A network fleet (gateways and their nodes)")
@domain_option
@json_option
def fleet_create(
    name: str, org: str, description: str | None, network: bool, domain: str | None, as_json: bool
) -> None:
    """Create a fleet in an organisation (org admins)."""
    body = {"name": name, "org": org, "is_network": network, **({"description": description} if description else {})}
    created = change_one(domain, "POST", "fleet/", "organisation", org, body)
    show_result(created, as_json, lambda r: f"Created fleet {r['slug']} ({r['name']}) in {org}")


update_command(
    fleet, FLEET, "Change a fleet's name or description (org admins).", [Field("name"), Field("description")]
)
delete_command(fleet, FLEET, "Delete a fleet (its devices stay).", "Delete this fleet?")


@fleet.command("devices")
@click.argument("slug")
@domain_option
@json_option
def fleet_devices(slug: str, domain: str | None, as_json: bool) -> None:
    """List a fleet's devices."""
    list_rows(domain, f"fleet/{slug}/devices/", ("device", "always_on", "is_access_point"), as_json)


@fleet.command("add")
@click.argument("slug")
@click.argument("device")
@click.option("--always-on", is_flag=True)
@click.option("--access-point", is_flag=True, help="The device is the fleet's access point (gateway)")
@domain_option
def fleet_add(slug: str, device: str, always_on: bool, access_point: bool, domain: str | None) -> None:
    """Add a device to a fleet (org admins)."""
    body = {"device": device, "always_on": always_on, "is_access_point": access_point}
    change_one(domain, "POST", f"fleet/{slug}/register/", "fleet", slug, body)
    click.echo(f"Added {device} to fleet {slug}")


@fleet.command("remove")
@click.argument("slug")
@click.argument("device")
@domain_option
def fleet_remove(slug: str, device: str, domain: str | None) -> None:
    """Remove a device from a fleet (org admins)."""
    change_one(domain, "POST", f"fleet/{slug}/deregister/", "fleet", slug, {"device": device})
    click.echo(f"Removed {device} from fleet {slug}")
