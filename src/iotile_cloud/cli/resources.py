"""The commands every resource group has in common (``show``, ``update``, ``delete``), made once.

A :class:`Resource` says where a kind of record lives in the API and how the command line names it;
``show_command``/``update_command``/``delete_command`` add the standard command to a group, with the
same arguments, options, output and exit codes in every group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click

from iotile_cloud.cli.common import (
    change_one,
    domain_option,
    field_options,
    json_option,
    logged_in_client,
    parse_fields,
    show_one,
    show_record,
)
from iotile_cloud.client import Client


@dataclass(frozen=True)
class Resource:
    """``<path>/<ref>/`` in the API, a ``<kind>`` in messages, given on the command line as ``argument``.

    ``resolve`` turns what the user typed into the id of the URL (projects: a name or slug into the
    uuid); without it the reference is used as it is.
    """

    path: str
    kind: str
    argument: str = "slug"
    metavar: str | None = None
    resolve: Callable[[Client, str], str] | None = None

    def url(self, domain: str | None, ref: str) -> str:
        key = self.resolve(logged_in_client(domain), ref) if self.resolve else ref
        return f"{self.path}/{key}/"

    def reference(self, function: Any) -> Any:
        return click.argument(self.argument, metavar=self.metavar)(function)


@dataclass(frozen=True)
class Field:
    """A named option of ``update`` that sets one field (``--name``; ``--active/--inactive``)."""

    name: str
    flag: str = ""

    @property
    def declaration(self) -> str:
        return self.flag or f"--{self.name}"


def _decorate(function: Any, decorators: Sequence[Callable[[Any], Any]]) -> Any:
    """Apply ``decorators`` as if written top to bottom above ``function``."""
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def show_result(record: Any, as_json: bool, message: Callable[[Any], str]) -> None:
    """The server's record as JSON, or one line saying what was done."""
    if as_json:
        show_record(record, True)
    else:
        click.echo(message(record))


def show_command(group: click.Group, resource: Resource, summary: str) -> None:
    def show(domain: str | None, as_json: bool, **ref: str) -> None:
        text = ref[resource.argument]
        show_one(domain, resource.url(domain, text), resource.kind, text, as_json)

    show.__doc__ = summary
    _decorate(show, [group.command("show"), resource.reference, domain_option, json_option])


def update_command(group: click.Group, resource: Resource, summary: str, fields: Sequence[Field] = ()) -> None:
    flags = [field.declaration for field in fields]
    hint = f"{', '.join(flags)} or -f key=value" if flags else "-f key=value or -F key=value"

    def update(raw: tuple[str, ...], typed: tuple[str, ...], domain: str | None, as_json: bool, **given: Any) -> None:
        text = given.pop(resource.argument)
        named: Mapping[str, Any] = {name: value for name, value in given.items() if value is not None}
        body = {**parse_fields(raw, typed), **named}
        if not body:
            raise click.UsageError(f"nothing to change: give {hint}")
        show_record(change_one(domain, "PATCH", resource.url(domain, text), resource.kind, text, body), as_json)

    update.__doc__ = summary
    options = [click.option(flag, default=None) for flag in flags]
    _decorate(
        update, [group.command("update"), resource.reference, *options, field_options, domain_option, json_option]
    )


def delete_command(
    group: click.Group, resource: Resource, summary: str, prompt: str, staff_help: str | None = None
) -> None:
    """``delete`` with a confirmation; ``staff_help`` adds ``--staff`` (``?staff=1``) for staff-only deletes."""

    def delete(domain: str | None, staff: bool = False, **ref: str) -> None:
        text = ref[resource.argument]
        query = {"staff": 1} if staff else {}
        change_one(domain, "DELETE", resource.url(domain, text), resource.kind, text, None, **query)
        click.echo(f"Deleted {resource.kind} {text}")

    delete.__doc__ = summary
    staff = [click.option("--staff", is_flag=True, help=staff_help)] if staff_help else []
    confirm = click.confirmation_option(prompt=prompt)
    _decorate(delete, [group.command("delete"), resource.reference, *staff, confirm, domain_option])
