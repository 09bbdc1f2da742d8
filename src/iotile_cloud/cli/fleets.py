"""``iotile-cloud fleet ...``: fleets (named groups of devices in an organisation)."""

from __future__ import annotations

import click

from iotile_cloud.cli.common import (
    Group,
    change_one,
    domain_option,
    field_options,
    json_option,
    list_rows,
    parse_fields,
    show_one,
    show_record,
)

COLUMNS = ("slug", "name", "org", "is_network", "description")


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


@fleet.command("show")
@click.argument("slug")
@domain_option
@json_option
def fleet_show(slug: str, domain: str | None, as_json: bool) -> None:
    """Show one fleet (by its g-- slug)."""
    show_one(domain, f"fleet/{slug}/", "fleet", slug, as_json)


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
    if as_json:
        show_record(created, True)
    else:
        click.echo(f"Created fleet {created['slug']} ({created['name']}) in {org}")


@fleet.command("update")
@click.argument("slug")
@click.option("--name", default=None)
@click.option("--description", default=None)
@field_options
@domain_option
@json_option
def fleet_update(
    slug: str,
    name: str | None,
    description: str | None,
    raw: tuple[str, ...],
    typed: tuple[str, ...],
    domain: str | None,
    as_json: bool,
) -> None:
    """Change a fleet's name or description (org admins)."""
    named = (("name", name), ("description", description))
    body = {**parse_fields(raw, typed), **{k: v for k, v in named if v is not None}}
    if not body:
        raise click.UsageError("nothing to change: give --name, --description or -f key=value")
    show_record(change_one(domain, "PATCH", f"fleet/{slug}/", "fleet", slug, body), as_json)


@fleet.command("delete")
@click.argument("slug")
@click.confirmation_option(prompt="Delete this fleet?")
@domain_option
def fleet_delete(slug: str, domain: str | None) -> None:
    """Delete a fleet (its devices stay)."""
    change_one(domain, "DELETE", f"fleet/{slug}/", "fleet", slug, None)
    click.echo(f"Deleted fleet {slug}")


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
