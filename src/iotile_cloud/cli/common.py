"""What every command group shares: error handling, the logged-in client, output and common options.

Command modules import from here and never from each other, so the groups stay free of import cycles.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson

from iotile_cloud.api.exceptions import RestBaseException
from iotile_cloud.client import Client
from iotile_cloud.utils.basic import str_to_datetime


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


def logged_in_client(domain: str | None) -> Client:
    client = Client.from_config(domain)
    if not client.token:
        raise click.ClickException(
            f"Not logged in to {client.domain}: run `iotile-cloud login --domain {client.domain}`"
        )
    return client


def echo_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


domain_option = click.option("--domain", default=None, help="Server, e.g. http://127.0.0.1:8000 (default: last login)")
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
