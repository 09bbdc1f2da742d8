"""The ``iotile-cloud`` command line.

Every command prints one line of explanation and exits non-zero on failure; ``--help`` works
everywhere. Tokens are kept owner-only in the user config directory (``iotile-cloud login``).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson

from iotile_cloud import __version__
from iotile_cloud.api.exceptions import RestBaseException
from iotile_cloud.client import Client
from iotile_cloud.client import config as credentials


@contextmanager
def _friendly_errors() -> Iterator[None]:
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


def _client(domain: str | None) -> Client:
    client = Client.from_config(domain)
    if not client.token:
        raise click.ClickException(
            f"Not logged in to {client.domain}: run `iotile-cloud login --domain {client.domain}`"
        )
    return client


def _echo_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


domain_option = click.option("--domain", default=None, help="Server, e.g. http://127.0.0.1:8000 (default: last login)")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="iotile-cloud")
def main() -> None:
    """Work with IOTile Cloud: log in, read data, handle streamer reports, run a local server."""


# -- accounts ---------------------------------------------------------------------------------


@main.command()
@click.option("--domain", default="https://iotile.cloud", show_default=True, help="Server to log in to")
@click.option("--email", prompt=True, help="Account email")
@click.option("--password", prompt=True, hide_input=True, help="Account password (prompted when left out)")
def login(domain: str, email: str, password: str) -> None:
    """Log in and keep the token (owner-only) in the user config directory."""
    with _friendly_errors(), Client(domain) as client:
        account = client.login(email, password)
        path = credentials.save_credentials(domain, str(client.token), "jwt", account.get("username"))
    click.echo(f"Logged in to {domain.rstrip('/')} as {account.get('username')} (token saved in {path})")


@main.command()
@domain_option
def logout(domain: str | None) -> None:
    """Log out and forget the stored token."""
    domain = (domain or credentials.default_domain()).rstrip("/")
    client = _client(domain)
    with contextlib.suppress(RestBaseException):
        client.logout()  # the token is forgotten either way
    credentials.forget_credentials(domain)
    click.echo(f"Logged out of {domain}")


@main.command()
@domain_option
def whoami(domain: str | None) -> None:
    """Show the account the stored token belongs to."""
    with _friendly_errors():
        client = _client(domain)
        info = client.get("auth/user-info/")
    click.echo(f"{info['username']} <{info['email']}> on {client.domain}")


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="-p")
        out[key] = value
    return out


@main.command()
@click.argument("path")
@click.option("-p", "--param", "params", multiple=True, help="Query parameter key=value (repeatable)")
@click.option("--all", "all_pages", is_flag=True, help="Follow `next` links and print every item as one list")
@domain_option
def get(path: str, params: tuple[str, ...], all_pages: bool, domain: str | None) -> None:
    """Print the JSON of any API path, e.g. `iotile-cloud get device/d--0000-0000-0000-0001`."""
    path = path.strip("/") + "/"
    if path.startswith("api/v1/"):
        path = path[len("api/v1/") :]
    with _friendly_errors():
        client = _client(domain)
        query = _params(params)
        result = list(client.paginate(path, **query)) if all_pages else client.get(path, **query)
    if isinstance(result, bytes):
        sys.stdout.buffer.write(result)
    else:
        _echo_json(result)


# -- server -----------------------------------------------------------------------------------

database_option = click.option("--database", default=None, help="Database URL (default: SQLite in the data dir)")
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the SQLite file, the JWT secret and event files live",
)


@main.command()
@database_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@data_dir_option
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
@click.option("--max-json-mb", default=4.0, show_default=True, type=click.FloatRange(0.01), help="JSON body cap")
@click.option(
    "--max-upload-mb", default=32.0, show_default=True, type=click.FloatRange(0.01), help="Report/event file body cap"
)
def serve(
    database: str | None,
    host: str,
    port: int,
    data_dir: Path | None,
    log_level: str,
    max_json_mb: float,
    max_upload_mb: float,
) -> None:
    """Run a local IOTile Cloud (SQLite by default, or --database postgresql://...)."""
    with needs_extra("server"):
        from iotile_cloud.server.limits import BodyLimits
        from iotile_cloud.server.run import serve as run

    limits = BodyLimits(json=int(max_json_mb * 1024 * 1024), upload=int(max_upload_mb * 1024 * 1024))
    run(host=host, port=port, database_url=database, data_dir=data_dir, log_level=log_level, limits=limits)


@main.group()
def admin() -> None:
    """Administer a local server's database directly."""


@contextmanager
def _database(database: str | None, data_dir: Path | None) -> Iterator[Any]:
    with needs_extra("server"):
        from iotile_cloud.server.app import default_data_dir
        from iotile_cloud.server.db import make_engine, migrate, sqlite_url
        from iotile_cloud.server.security import private_dir, private_sqlite

    url = database or sqlite_url(private_dir(data_dir or default_data_dir()) / "iotile-cloud.sqlite3")
    private_sqlite(url)
    engine = make_engine(url)
    migrate(engine)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


@admin.command("create-user")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--username", default=None, help="Default: the part of the email before @")
@click.option("--staff", is_flag=True, help="Give staff rights (see everything with ?staff=1)")
@database_option
@data_dir_option
def create_user_command(
    email: str, password: str, username: str | None, staff: bool, database: str | None, data_dir: Path | None
) -> None:
    """Create an active account."""
    with needs_extra("server"):
        import sqlalchemy as sa

        from iotile_cloud.server import db
        from iotile_cloud.server.routes.auth import create_user

    username = username or email.split("@")[0]
    if "@" not in email:
        raise click.ClickException(f"{email!r} is not an email address")
    with _database(database, data_dir) as conn:
        taken = conn.execute(
            sa.select(db.users.c.id).where(
                sa.or_(db.users.c.email == email.lower(), db.users.c.slug == username.lower())
            )
        ).first()
        if taken:
            raise click.ClickException(f"A user with email {email} or username {username} already exists")
        create_user(conn, email=email, username=username, password=password, is_staff=staff)
    click.echo(f"Created {'staff ' if staff else ''}user {username} <{email}>")


@admin.command("set-device-key")
@click.argument("device")
@click.argument("hexkey")
@database_option
@data_dir_option
def set_device_key(device: str, hexkey: str, database: str | None, data_dir: Path | None) -> None:
    """Register a device's 32-byte user key (64 hex digits) so its signed reports can be verified."""
    with needs_extra("server"):
        import sqlalchemy as sa

        from iotile_cloud.server import db
    from iotile_cloud.utils.gid import IOTileDeviceSlug

    try:
        key = bytes.fromhex(hexkey)
    except ValueError:
        raise click.ClickException("HEXKEY must be hex digits") from None
    if len(key) != 32:
        raise click.ClickException(f"HEXKEY must be 32 bytes (64 hex digits), got {len(key)} bytes")
    with _friendly_errors():
        slug = IOTileDeviceSlug(device)
    with _database(database, data_dir) as conn:
        done = conn.execute(
            sa.update(db.devices).where(db.devices.c.id == slug.get_id()).values(report_key=key.hex())
        ).rowcount
        if not done:
            raise click.ClickException(f"No device {slug} in this database")
    click.echo(f"Report key set for {slug}")


@main.command()
@data_dir_option
def demo(data_dir: Path | None) -> None:
    """Start an embedded local cloud, fill it with a week of readings and walk through the client."""
    with needs_extra("server"):
        from iotile_cloud.demo import run_demo

    with _friendly_errors():
        run_demo(data_dir)


def _register_subcommands() -> None:
    from iotile_cloud.cli_data import data
    from iotile_cloud.cli_reports import report, upload

    main.add_command(report)
    main.add_command(upload)
    main.add_command(data)


_register_subcommands()


if __name__ == "__main__":  # pragma: no cover
    main()
