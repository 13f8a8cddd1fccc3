"""attempts.counting: each person's counting attempt of a round, kept at finish time

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 16:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The attempts that count, as best_results chose them with a window before this revision.
_MARK_EXISTING = """
UPDATE attempts SET counting = (id IN (
    SELECT id FROM (
        SELECT id, row_number() OVER (
            PARTITION BY person_id, round
            ORDER BY correct_count DESC, COALESCE(duration_seconds, 0), finished_at, id
        ) AS pick
        FROM attempts WHERE status <> 'in_progress'
    ) picks WHERE pick = 1
))
"""


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("counting", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index("ix_attempts_round_counting", ["round", "counting"], unique=False)
    op.execute(_MARK_EXISTING)


def downgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_attempts_round_counting")
        batch_op.drop_column("counting")
