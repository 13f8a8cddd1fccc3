"""accounts per channel; the organisers' console (roles, audit log, question fixes,
broadcasts, feedback); round 2, prizes and linking (state, qualifiers, prizes, code tries,
link codes, dialogues)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def upgrade() -> None:
    # -- accounts: a person is recognised by (channel, the platform's user id)
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        _when("linked_at", False),
        _when("last_used_at", False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_accounts_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("channel", "external_id", name="uq_accounts_channel_external_id"),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_accounts_person_id"), ["person_id"], unique=False)
    op.execute(
        "INSERT INTO accounts (channel, external_id, person_id, linked_at, last_used_at) "
        "SELECT 'telegram', CAST(telegram_id AS VARCHAR(64)), id, registered_at, registered_at "
        "FROM persons"
    )
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.drop_constraint("uq_persons_telegram_id", type_="unique")
        batch_op.drop_column("telegram_id")
        batch_op.add_column(_when("locked_at"))
        batch_op.add_column(sa.Column("lock_reason", sa.String(length=500), nullable=True))
        batch_op.add_column(_when("unreachable_at"))
        batch_op.add_column(
            sa.Column("reminders_off", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    # -- registration drafts, keyed by account
    op.create_table(
        "registration_drafts_new",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        _when("updated_at", False),
        sa.PrimaryKeyConstraint("channel", "external_id", name="pk_registration_drafts_account"),
    )
    op.execute(
        "INSERT INTO registration_drafts_new (channel, external_id, data, updated_at) "
        "SELECT 'telegram', CAST(telegram_id AS VARCHAR(64)), data, updated_at "
        "FROM registration_drafts"
    )
    op.drop_table("registration_drafts")
    op.rename_table("registration_drafts_new", "registration_drafts")

    with op.batch_alter_table("questions", schema=None) as batch_op:
        batch_op.add_column(_when("voided_at"))
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prediction", sa.BigInteger(), nullable=True))

    # -- the organisers' console
    op.create_table(
        "staff_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("granted_by", sa.String(length=96), nullable=False),
        _when("granted_at", False),
        _when("revoked_at"),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_staff_roles_unit_id_units")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_staff_roles_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_roles")),
        sa.UniqueConstraint("channel", "external_id", name="uq_staff_roles_channel_external_id"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        _when("at", False),
        sa.Column("actor", sa.String(length=96), nullable=False),
        sa.Column("actor_name", sa.String(length=255), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_at", ["at"], unique=False)
    op.create_table(
        "question_fixes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("before", sa.Text(), nullable=False),
        sa.Column("after", sa.Text(), nullable=False),
        sa.Column("by", sa.String(length=96), nullable=False),
        _when("at", False),
        sa.Column("attempts_touched", sa.Integer(), nullable=False),
        sa.Column("persons_touched", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"], name=op.f("fk_question_fixes_question_id_questions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_question_fixes")),
    )
    with op.batch_alter_table("question_fixes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_question_fixes_question_id"), ["question_id"], unique=False
        )
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=96), nullable=False),
        _when("created_at", False),
        sa.Column("segment", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        _when("confirmed_at"),
        _when("finished_at"),
        sa.Column("report_chat", sa.String(length=96), nullable=True),
        sa.Column("report_message_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcasts")),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("question_id", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        _when("created_at", False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_by", sa.String(length=96), nullable=True),
        _when("answered_at"),
        _when("closed_at"),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_feedback_person_id_persons")
        ),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["attempts.id"], name=op.f("fk_feedback_attempt_id_attempts")
        ),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"], name=op.f("fk_feedback_question_id_questions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_person_id"), ["person_id"], unique=False)
        batch_op.create_index("ix_feedback_status", ["status", "created_at"], unique=False)

    # -- round 2, prizes, linking accounts, text-only dialogues
    op.create_table(
        "contest_state",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        _when("updated_at", False),
        sa.Column("updated_by", sa.String(length=96), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_contest_state")),
    )
    op.create_table(
        "qualifiers",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=False),
        _when("confirmed_at", False),
        sa.Column("confirmed_by", sa.String(length=96), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_qualifiers_person_id_persons")
        ),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["attempts.id"], name=op.f("fk_qualifiers_attempt_id_attempts")
        ),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_qualifiers")),
    )
    op.create_table(
        "prizes",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("prize", sa.String(length=16), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=False),
        _when("confirmed_at", False),
        sa.Column("confirmed_by", sa.String(length=96), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_prizes_person_id_persons")
        ),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["attempts.id"], name=op.f("fk_prizes_attempt_id_attempts")
        ),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_prizes")),
    )
    op.create_table(
        "code_tries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        _when("tried_at", False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_code_tries_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_tries")),
    )
    with op.batch_alter_table("code_tries", schema=None) as batch_op:
        batch_op.create_index("ix_code_tries_person_at", ["person_id", "tried_at"], unique=False)
    op.create_table(
        "link_codes",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        _when("created_at", False),
        _when("expires_at", False),
        _when("used_at"),
        sa.Column("used_by", sa.String(length=96), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_link_codes_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_link_codes")),
    )
    with op.batch_alter_table("link_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_link_codes_person_id"), ["person_id"], unique=False)
    op.create_table(
        "dialogues",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        _when("updated_at", False),
        sa.PrimaryKeyConstraint("channel", "external_id", name=op.f("pk_dialogues")),
    )


def downgrade() -> None:
    for table in (
        "dialogues",
        "link_codes",
        "code_tries",
        "prizes",
        "qualifiers",
        "contest_state",
        "feedback",
        "broadcasts",
        "question_fixes",
        "audit_log",
        "staff_roles",
    ):
        op.drop_table(table)
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("prediction")
    with op.batch_alter_table("questions", schema=None) as batch_op:
        batch_op.drop_column("voided_at")
    op.create_table(
        "registration_drafts_old",
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        _when("updated_at", False),
        sa.PrimaryKeyConstraint("telegram_id", name="pk_registration_drafts_old"),
    )
    op.execute(
        "INSERT INTO registration_drafts_old (telegram_id, data, updated_at) "
        "SELECT CAST(external_id AS BIGINT), data, updated_at FROM registration_drafts "
        "WHERE channel = 'telegram'"
    )
    op.drop_table("registration_drafts")
    op.rename_table("registration_drafts_old", "registration_drafts")
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.drop_column("reminders_off")
        batch_op.drop_column("unreachable_at")
        batch_op.drop_column("lock_reason")
        batch_op.drop_column("locked_at")
        batch_op.add_column(sa.Column("telegram_id", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE persons SET telegram_id = (SELECT CAST(external_id AS BIGINT) FROM accounts "
        "WHERE accounts.person_id = persons.id AND accounts.channel = 'telegram' "
        "ORDER BY accounts.id LIMIT 1)"
    )
    op.drop_table("accounts")
