"""``iotile-cloud project ...``: projects (addressed by uuid, ``p--`` slug or name)."""

from __future__ import annotations

import click

from iotile_cloud.cli.common import (
    Group,
    change_one,
    domain_option,
    field_options,
    json_option,
    list_rows,
    logged_in_client,
    parse_fields,
    project_id,
    show_one,
    show_record,
)

COLUMNS = ("slug", "name", "org", "id", "created_on")


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


@project.command("show")
@click.argument("project_ref", metavar="PROJECT")
@domain_option
@json_option
def project_show(project_ref: str, domain: str | None, as_json: bool) -> None:
    """Show one project (PROJECT: uuid, p-- slug or name)."""
    show_one(domain, f"project/{project_id(logged_in_client(domain), project_ref)}/", "project", project_ref, as_json)


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
    if as_json:
        show_record(created, True)
    else:
        click.echo(f"Created project {created['slug']} ({created['name']}, id {created['id']}) in {org}")


@project.command("update")
@click.argument("project_ref", metavar="PROJECT")
@click.option("--name", default=None)
@click.option("--about", default=None)
@field_options
@domain_option
@json_option
def project_update(
    project_ref: str,
    name: str | None,
    about: str | None,
    raw: tuple[str, ...],
    typed: tuple[str, ...],
    domain: str | None,
    as_json: bool,
) -> None:
    """Change a project's name or description (org admins)."""
    body = {**parse_fields(raw, typed), **{k: v for k, v in (("name", name), ("about", about)) if v is not None}}
    if not body:
        raise click.UsageError("nothing to change: give --name, --about or -f key=value")
    path = f"project/{project_id(logged_in_client(domain), project_ref)}/"
    show_record(change_one(domain, "PATCH", path, "project", project_ref, body), as_json)


@project.command("delete")
@click.argument("project_ref", metavar="PROJECT")
@click.confirmation_option(prompt="Delete this project and all its streams?")
@domain_option
def project_delete(project_ref: str, domain: str | None) -> None:
    """Delete a project and its streams (org admins)."""
    path = f"project/{project_id(logged_in_client(domain), project_ref)}/"
    change_one(domain, "DELETE", path, "project", project_ref, None)
    click.echo(f"Deleted project {project_ref}")
