"""Schema migrations: the Alembic history builds exactly the schema the code declares, both ways."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from iotile_cloud.server import db

MIGRATIONS = Path(db.__file__).parent / "migrations"


def _config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def rebuild_schema(engine: sa.Engine) -> None:
    """After a test that filled a database made by migrations: the rows go first (on SQLite, later
    revisions' downgrades rebuild tables these rows reference), then the schema is rebuilt from nothing."""
    with engine.begin() as conn:
        present = set(sa.inspect(conn).get_table_names())
        for table in ("data", "segments", "streams", "variables", "projects", "orgs", "users"):
            if table in present:
                conn.execute(sa.delete(sa.table(table)))
    with engine.begin() as conn:
        command.downgrade(_config(conn), "base")
    db.migrate(engine)


@pytest.mark.usefixtures("migrations_alone")
def test_migrations_match_the_declared_schema(tmp_path: Path) -> None:
    url = os.environ.get("IOTILE_CLOUD_TEST_DATABASE_URL") or db.sqlite_url(tmp_path / "m.sqlite3")
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(_config(conn), "base")
        with engine.begin() as conn:
            assert not sa.inspect(conn).has_table("data")
        db.migrate(engine)  # from nothing to the newest revision, as a first start does
        with engine.begin() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, db.metadata) == []
            assert context.get_current_revision() is not None
        db.migrate(engine)  # a second start is a no-op
    finally:
        engine.dispose()
