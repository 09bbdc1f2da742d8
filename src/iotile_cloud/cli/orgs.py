"""``iotile-cloud org ...``: organisations and their members."""

from __future__ import annotations

import click

from iotile_cloud.cli.common import (
    Group,
    change_one,
    domain_option,
    field_options,
    friendly_errors,
    json_option,
    list_rows,
    logged_in_client,
    missing_as,
    parse_fields,
    show_one,
    show_record,
    show_table,
)

COLUMNS = ("slug", "name", "created_by", "created_on")


@click.group(cls=Group)
def org() -> None:
    """Organisations and their members."""


@org.command("list")
@click.option("--search", default=None, help="Only names containing this text")
@domain_option
@json_option
def org_list(search: str | None, domain: str | None, as_json: bool) -> None:
    """List the organisations you belong to."""
    list_rows(domain, "org/", COLUMNS, as_json, search=search)


@org.command("show")
@click.argument("slug")
@domain_option
@json_option
def org_show(slug: str, domain: str | None, as_json: bool) -> None:
    """Show one organisation."""
    show_one(domain, f"org/{slug}/", "organisation", slug, as_json)


@org.command("create")
@click.argument("name")
@click.option("--about", default=None, help="A short description")
@domain_option
@json_option
def org_create(name: str, about: str | None, domain: str | None, as_json: bool) -> None:
    """Create an organisation (you become its owner)."""
    body = {"name": name, **({"about": about} if about else {})}
    created = change_one(domain, "POST", "org/", "organisation", name, body)
    if as_json:
        show_record(created, True)
    else:
        click.echo(f"Created organisation {created['slug']} ({created['name']})")


@org.command("update")
@click.argument("slug")
@click.option("--name", default=None)
@click.option("--about", default=None)
@field_options
@domain_option
@json_option
def org_update(
    slug: str,
    name: str | None,
    about: str | None,
    raw: tuple[str, ...],
    typed: tuple[str, ...],
    domain: str | None,
    as_json: bool,
) -> None:
    """Change an organisation's name or description (admins)."""
    body = {**parse_fields(raw, typed), **{k: v for k, v in (("name", name), ("about", about)) if v is not None}}
    if not body:
        raise click.UsageError("nothing to change: give --name, --about or -f key=value")
    show_record(change_one(domain, "PATCH", f"org/{slug}/", "organisation", slug, body), as_json)


@org.command("delete")
@click.argument("slug")
@click.option("--staff", is_flag=True, help="Act as staff (?staff=1): the API lets only staff delete organisations")
@click.confirmation_option(prompt="Delete this organisation?")
@domain_option
def org_delete(slug: str, staff: bool, domain: str | None) -> None:
    """Delete an organisation (staff only, as on the original server)."""
    change_one(domain, "DELETE", f"org/{slug}/", "organisation", slug, None, **({"staff": 1} if staff else {}))
    click.echo(f"Deleted organisation {slug}")


@org.command("members")
@click.argument("slug")
@domain_option
@json_option
def org_members(slug: str, domain: str | None, as_json: bool) -> None:
    """List an organisation's members and their roles."""
    with friendly_errors(), missing_as("organisation", slug):
        answer = logged_in_client(domain).get(f"org/{slug}/members/")
    rows = answer.get("results", answer) if isinstance(answer, dict) else answer
    show_table(rows, ("user", "role_name", "is_active", "created_on"), as_json)


@org.command("invite")
@click.argument("slug")
@click.argument("user")
@click.option(
    "--role",
    type=click.Choice(["a1", "m1", "r1"]),
    default="m1",
    show_default=True,
    help="a1 Admin, m1 Member, r1 Read Only",
)
@domain_option
@json_option
def org_invite(slug: str, user: str, role: str, domain: str | None, as_json: bool) -> None:
    """Add an existing account (by username) to an organisation with a role (admins)."""
    added = change_one(domain, "POST", f"org/{slug}/register/", "organisation", slug, {"user": user, "role": role})
    if as_json:
        show_record(added, True)
    else:
        click.echo(f"Added {user} to {slug} as {added.get('role', role)}")
