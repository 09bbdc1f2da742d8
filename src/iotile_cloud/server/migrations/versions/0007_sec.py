"""login failure counters; API tokens stored as SHA-256 digests

Revision ID: sec
Revises: mock
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "sec"
down_revision = "mock"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_failures")),
    )
    # Hash the plain API tokens in place: a copy of the database no longer hands out credentials.
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("api_token", sa.String))
    conn = op.get_bind()
    for user_id, token in conn.execute(sa.select(users.c.id, users.c.api_token)).all():
        digest = hashlib.sha256(token.encode()).hexdigest()
        conn.execute(sa.update(users).where(users.c.id == user_id).values(api_token=digest))


def downgrade() -> None:
    # Digests cannot be turned back into tokens: each user gets a fresh one on their next login.
    op.drop_table("login_failures")
