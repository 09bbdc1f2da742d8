"""What every command group shares: error handling, the logged-in client, output and common options.

Command modules import from here and never from each other, so the groups stay free of import cycles.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import click
import orjson

from iotile_cloud.api.exceptions import RestBaseException
from iotile_cloud.client import Client
from iotile_cloud.utils.basic import str_to_datetime


class Group(click.Group):
    """A command group whose listing shows each command's whole first sentence (wrapped, never cut with
    "..."), in the order the commands were added."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Client errors become one readable line and exit code 1."""
    try:
        yield
    except RestBaseException as error:
        raise click.ClickException(str(error)) from None
    except ValueError as error:
        raise click.ClickException(str(error)) from None


@contextmanager
def needs_extra(extra: str) -> Iterator[None]:
    """A missing optional dependency becomes one line telling which extra to install."""
    try:
        yield
    except ModuleNotFoundError as error:
        raise click.ClickException(
            f"This command needs the [{extra}] extra ({error.name} is missing): pip install 'iotile-cloud[{extra}]'"
        ) from None


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "0.0.0.0")


def normalize_domain(domain: str) -> str:
    """``127.0.0.1:8000`` becomes ``http://127.0.0.1:8000``; other hosts without a scheme get https://."""
    domain = domain.strip().rstrip("/")
    if "://" in domain:
        return domain
    host = domain.split("/")[0].rsplit(":", 1)[0] if not domain.startswith("[") else domain.split("]")[0] + "]"
    return f"{'http' if host in LOOPBACK_HOSTS else 'https'}://{domain}"


def _domain_callback(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    return normalize_domain(value) if value else value


def logged_in_client(domain: str | None) -> Client:
    client = Client.from_config(domain)
    if not client.token:
        raise click.ClickException(
            f"Not logged in to {client.domain}: run `iotile-cloud login --domain {client.domain}`"
        )
    return client


def echo_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


domain_option = click.option(
    "--domain",
    default=None,
    callback=_domain_callback,
    help="Server, e.g. http://127.0.0.1:8000 (default: last login)",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table")
database_option = click.option("--database", default=None, help="Database URL (default: SQLite in the data dir)")
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the SQLite file, the JWT secret and event files live",
)


def received_time(value: str | None) -> dt.datetime:
    if not value:
        return dt.datetime.now(dt.timezone.utc)
    try:
        return str_to_datetime(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--received") from None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def show_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], as_json: bool = False) -> None:
    """A table with a header on a terminal; tab-separated lines without a header in a pipe (as ``gh``)."""
    if as_json:
        echo_json(list(rows))
        return
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    if not sys.stdout.isatty():
        for line in cells:
            click.echo("\t".join(line))
        return
    if not cells:
        click.echo("(none)", err=True)
        return
    header = [column.upper() for column in columns]
    widths = [max(len(text) for text in column) for column in zip(header, *cells, strict=False)]
    for line in [header, *cells]:
        click.echo("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip())


def show_record(record: Mapping[str, Any], as_json: bool = False) -> None:
    """One object as ``key: value`` lines (or JSON)."""
    if as_json:
        echo_json(record)
        return
    width = max((len(key) for key in record), default=0)
    for key, value in record.items():
        click.echo(f"{key + ':':<{width + 1}} {_cell(value)}")


def parse_fields(raw: Sequence[str] = (), typed: Sequence[str] = ()) -> dict[str, Any]:
    """``-f key=value`` pairs are strings; ``-F key=value`` values are read as JSON when they can be
    (numbers, true/false/null, lists, objects), as ``gh api`` does."""
    out: dict[str, Any] = {}
    for pairs, as_json, hint in ((raw, False, "-f"), (typed, True, "-F")):
        for pair in pairs:
            key, sep, text = pair.partition("=")
            if not sep or not key:
                raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint=hint)
            value: Any = text
            if as_json:
                with suppress(orjson.JSONDecodeError):
                    value = orjson.loads(text)
            out[key] = value
    return out


@contextmanager
def missing_as(kind: str, ref: str) -> Iterator[None]:
    """A 404 from the server becomes ``<kind> <ref> does not exist`` (exit code 1)."""
    from iotile_cloud.api.exceptions import HttpNotFoundError

    try:
        yield
    except HttpNotFoundError:
        raise click.ClickException(f"{kind} {ref} does not exist (or your account cannot see it)") from None


def project_id(client: Client, ref: str) -> str:
    """A project's uuid from its uuid, its ``p--`` slug or its name (projects are addressed by uuid)."""
    import uuid

    with suppress(ValueError):
        return str(uuid.UUID(ref))
    query = {"slug": ref} if ref.lower().startswith("p--") else {"name": ref}
    with friendly_errors():
        found = list(client.paginate("project/", **query))
    if not found:
        raise click.ClickException(f"project {ref} does not exist (or your account cannot see it)")
    if len(found) > 1:
        slugs = ", ".join(p["slug"] for p in found)
        raise click.ClickException(f"{len(found)} projects are named {ref!r} ({slugs}): give its p-- slug")
    return str(found[0]["id"])


def list_rows(domain: str | None, path: str, columns: Sequence[str], as_json: bool, **query: str | None) -> None:
    """Print every item of a list endpoint (all pages) as a table or JSON."""
    with friendly_errors():
        rows = list(logged_in_client(domain).paginate(path, **{k: v for k, v in query.items() if v}))
    show_table(rows, columns, as_json)


def show_one(domain: str | None, path: str, kind: str, ref: str, as_json: bool) -> None:
    with friendly_errors(), missing_as(kind, ref):
        record = logged_in_client(domain).get(path)
    show_record(record, as_json)


def change_one(domain: str | None, method: str, path: str, kind: str, ref: str, body: Any, **query: Any) -> Any:
    """PATCH/POST/DELETE one resource; a 404 says which one does not exist."""
    extra = {} if body is None else {"json": body}
    with friendly_errors(), missing_as(kind, ref):
        return logged_in_client(domain).request(method, path, params=query or None, **extra)


def field_options(function: Any) -> Any:
    """``-f key=value`` / ``-F key=value`` for fields the named options do not cover."""
    function = click.option(
        "-F", "--typed-field", "typed", multiple=True, help="Field key=value read as JSON (numbers, true, lists)"
    )(function)
    return click.option("-f", "--field", "raw", multiple=True, help="Field key=value sent as a string")(function)


def database_location(database: str | None, data_dir: Path | None) -> str:
    """The database URL ``serve`` and ``admin`` share, announced on standard error (password hidden)."""
    from iotile_cloud.server.app import default_data_dir
    from iotile_cloud.server.db import sqlite_url
    from iotile_cloud.server.security import private_dir, private_sqlite

    folder = private_dir(data_dir or default_data_dir())
    url = database or sqlite_url(folder / "iotile-cloud.sqlite3")
    private_sqlite(url)
    shown = url if database is None else _hide_password(url)
    click.echo(f"Data directory: {folder}\nDatabase: {shown}", err=True)
    return url


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':')[0]}:***@{host}"
