"""``iotile-cloud org ...``: organisations and their members."""

from __future__ import annotations

import click

from iotile_cloud.cli.common import (
    Group,
    change_one,
    domain_option,
    friendly_errors,
    json_option,
    list_rows,
    logged_in_client,
    missing_as,
    show_table,
)
from iotile_cloud.cli.resources import Field, Resource, delete_command, show_command, show_result, update_command

COLUMNS = ("slug", "name", "created_by", "created_on")
ORG = Resource("org", "organisation")


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


show_command(org, ORG, "Show one organisation.")


@org.command("create")
@click.argument("name")
@click.option("--about", default=None, help="A short description")
@domain_option
@json_option
def org_create(name: str, about: str | None, domain: str | None, as_json: bool) -> None:
    """Create an organisation (you become its owner)."""
    body = {"name": name, **({"about": about} if about else {})}
    created = change_one(domain, "POST", "org/", "organisation", name, body)
    show_result(created, as_json, lambda r: f"Created organisation {r['slug']} ({r['name']})")


update_command(org, ORG, "Change an organisation's name or description (admins).", [Field("name"), Field("about")])
delete_command(
    org,
    ORG,
    "Delete an organisation (staff only, as on the original server).",
    "Delete this organisation?",
    staff_help="Act as staff (?staff=1): the API lets only staff delete organisations",
)


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
    show_result(added, as_json, lambda r: f"Added {user} to {slug} as {r.get('role', role)}")
