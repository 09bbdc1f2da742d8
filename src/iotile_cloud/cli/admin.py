"""``iotile-cloud admin ...``: work on a local server's database directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from iotile_cloud.cli.common import data_dir_option, database_option, friendly_errors, needs_extra


@click.group()
def admin() -> None:
    """Administer a local server's database directly."""


@contextmanager
def _database(database: str | None, data_dir: Path | None) -> Iterator[Any]:
    with needs_extra("server"):
        from iotile_cloud.server.app import default_data_dir
        from iotile_cloud.server.db import make_engine, migrate, sqlite_url

    folder = data_dir or default_data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database or sqlite_url(folder / "iotile-cloud.sqlite3"))
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
    with friendly_errors():
        slug = IOTileDeviceSlug(device)
    with _database(database, data_dir) as conn:
        done = conn.execute(
            sa.update(db.devices).where(db.devices.c.id == slug.get_id()).values(report_key=key.hex())
        ).rowcount
        if not done:
            raise click.ClickException(f"No device {slug} in this database")
    click.echo(f"Report key set for {slug}")
