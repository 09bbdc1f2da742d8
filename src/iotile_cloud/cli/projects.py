"""``iotile-cloud project ...``: projects (addressed by uuid, ``p--`` slug or name)."""

from __future__ import annotations

import click

from iotile_cloud.cli.common import Group, change_one, domain_option, json_option, list_rows, project_id
from iotile_cloud.cli.resources import Field, Resource, delete_command, show_command, show_result, update_command

COLUMNS = ("slug", "name", "org", "id", "created_on")
PROJECT = Resource("project", "project", argument="project_ref", metavar="PROJECT", resolve=project_id)


@click.group(cls=Group)
def project() -> None:
    """Projects of your organisations."""


@project.command("list")
@click.option("--org", default=None, help="Only projects of this organisation (slug)")
@domain_option
@json_option
def project_list(org: str | None, domain: str | None, as_json: bool) -> None:
    """List the projects of your organisations."""
    list_rows(domain, "project/", COLUMNS, as_json, org__slug=org)


show_command(project, PROJECT, "Show one project (PROJECT: uuid, p-- slug or name).")


@project.command("create")
@click.argument("name")
@click.option("--org", required=True, help="The organisation (slug)")
@click.option("--about", default=None, help="A short description")
@domain_option
@json_option
def project_create(name: str, org: str, about: str | None, domain: str | None, as_json: bool) -> None:
    """Create a project in an organisation (org admins)."""
    body = {"name": name, "org": org, **({"about": about} if about else {})}
    created = change_one(domain, "POST", "project/", "organisation", org, body)
    show_result(created, as_json, lambda r: f"Created project {r['slug']} ({r['name']}, id {r['id']}) in {org}")


update_command(
    project, PROJECT, "Change a project's name or description (org admins).", [Field("name"), Field("about")]
)
delete_command(
    project, PROJECT, "Delete a project and its streams (org admins).", "Delete this project and all its streams?"
)
