"""``iotile-cloud admin ...``: work on a local server's database directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from iotile_cloud.cli.common import (
    Group,
    data_dir_option,
    database_location,
    database_option,
    friendly_errors,
    needs_extra,
)


@click.group(cls=Group)
def admin() -> None:
    """Work on a local server's database directly (the one `serve` uses)."""


@contextmanager
def _database(database: str | None, data_dir: Path | None) -> Iterator[Any]:
    with needs_extra("server"):
        from iotile_cloud.server.db import make_engine, migrate

    url = database_location(database, data_dir)
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
@click.option("--owner", is_flag=True, help="The local server's owner: may register devices without staff steps")
@database_option
@data_dir_option
def create_user_command(
    email: str,
    password: str,
    username: str | None,
    staff: bool,
    owner: bool,
    database: str | None,
    data_dir: Path | None,
) -> None:
    """Create an active account (--owner: the one that registers devices)."""
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
        create_user(conn, email=email, username=username, password=password, is_staff=staff, is_owner=owner)
    kind = " ".join(word for word, on in (("owner", owner), ("staff", staff)) if on)
    click.echo(f"Created {kind + ' ' if kind else ''}user {username} <{email}>")


@admin.command("set-owner")
@click.argument("email")
@click.option("--revoke", is_flag=True, help="Take the owner's rights away instead")
@database_option
@data_dir_option
def set_owner(email: str, revoke: bool, database: str | None, data_dir: Path | None) -> None:
    """Make an existing account the local server's owner (it may register devices)."""
    with needs_extra("server"):
        import sqlalchemy as sa

        from iotile_cloud.server import db

    with _database(database, data_dir) as conn:
        done = conn.execute(
            sa.update(db.users)
            .where(sa.or_(db.users.c.email == email.lower(), db.users.c.slug == email.lower()))
            .values(is_owner=not revoke)
        ).rowcount
        if not done:
            raise click.ClickException(f"No account {email} in this database")
    click.echo(f"{email} is {'no longer' if revoke else 'now'} an owner of this server")


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


@admin.command("compact")
@database_option
@data_dir_option
def compact_command(database: str | None, data_dir: Path | None) -> None:
    """Merge small stored segments and remove the files of deleted events and reports now (a running
    server does both by itself, every few seconds and every ten minutes)."""
    with needs_extra("server"):
        from iotile_cloud.server import housekeeping, points
        from iotile_cloud.server.app import default_data_dir
        from iotile_cloud.server.db import make_engine, migrate

    engine = make_engine(database_location(database, data_dir))
    try:
        migrate(engine)
        removed = 0
        while merged := points.compact_all(engine, limit=1000):
            removed += merged
        files = housekeeping.sweep(engine, data_dir or default_data_dir())
    finally:
        engine.dispose()
    click.echo(f"Merged away {removed} segment(s); removed {files} file(s) of deleted records")
