"""outbox: back-off (not_before), validity (expires_at) and how each row ended (outcome)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_before", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.String(length=16), nullable=True))
    # Rows ended before this revision were either sent or given up; their errors tell which.
    op.execute(
        "UPDATE outbox SET outcome = CASE WHEN last_error IS NULL THEN 'sent' ELSE 'refused' END "
        "WHERE sent_at IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("outcome")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("not_before")
