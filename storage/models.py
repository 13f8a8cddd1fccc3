"""SQLAlchemy 2 typed models. Times are stored as naive UTC and read back as aware UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, naive UTC in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UnitRow(Base):
    __tablename__ = "units"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16), index=True)
    staff_count: Mapped[int] = mapped_column(Integer)
    name_key: Mapped[str] = mapped_column(String(255))  # accent-folded, for search
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QuestionRow(Base):
    __tablename__ = "questions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text_key: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of folded text
    topic: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    option_a: Mapped[str] = mapped_column(Text)
    option_b: Mapped[str] = mapped_column(Text)
    option_c: Mapped[str] = mapped_column(Text)
    answer: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Voided by the organisers during the contest: counts as correct for whoever drew it.
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PersonRow(Base):
    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    full_name: Mapped[str] = mapped_column(String(255))
    birth_date: Mapped[date] = mapped_column(Date)
    phone: Mapped[str] = mapped_column(String(32), unique=True)
    group: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    position: Mapped[str | None] = mapped_column(String(16))
    ward_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    consent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lock_reason: Mapped[str | None] = mapped_column(String(500))
    unreachable_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminders_off: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class AccountRow(Base):
    """A person's account on one channel (Telegram, Zalo): how the bot recognises them.
    ``last_used_at`` tells which channel results and reminders go to."""

    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_accounts_channel_external_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DraftRow(Base):
    __tablename__ = "registration_drafts"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AttemptRow(Base):
    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("person_id", "round", "number", name="uq_attempts_person_round_number"),
        Index("ix_attempts_status_deadline", "status", "deadline_at"),
        Index("ix_attempts_round_counting", "round", "counting"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    question_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    correct_count: Mapped[int] = mapped_column(Integer, default=0)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    warned: Mapped[int] = mapped_column(Integer, default=0)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    # The person's counting attempt of the round (most correct, shorter time, earlier
    # submission), kept up to date by every finish: ranking reads these rows only.
    counting: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The whole number typed at the end of the attempt, when the tie rule asks for one.
    prediction: Mapped[int | None] = mapped_column(BigInteger)


class AttemptItemRow(Base):
    __tablename__ = "attempt_items"

    attempt_id: Mapped[int] = mapped_column(
        ForeignKey("attempts.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"), index=True)
    option_order: Mapped[str] = mapped_column(String(8))  # e.g. "201"
    choice: Mapped[int | None] = mapped_column(Integer)
    correct: Mapped[bool | None] = mapped_column(Boolean)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxRow(Base):
    """Durable notifications: one row per (person, purpose), sent at most once.

    A row is pending while ``sent_at`` is NULL; ``sent_at`` is when it ended, and
    ``outcome`` how: delivered (``sent``), shown in the reply itself (``inline``), refused
    for good by the platform (``blocked``, ``refused``), no longer meaningful (``expired``),
    or nothing left to say (``skipped``). A transient failure sets ``not_before`` (back-off)
    and keeps the row pending until ``expires_at``.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "sent_at", "claimed_until"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    tries: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))


class LeaseRow(Base):
    """A named lease: the process holding it runs the singleton jobs (deadlines, outbox)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StaffRoleRow(Base):
    """An account's role beyond contestant: ``organiser`` (besides CONTEST_ADMIN_IDS), or
    ``focal`` for one unit (its participation only). One row per account; revoking
    keeps the row with ``revoked_at`` set."""

    __tablename__ = "staff_roles"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_staff_roles_channel_external_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    granted_by: Mapped[str] = mapped_column(String(96))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditRow(Base):
    """Every organiser action and every refused attempt at one: who, when, what, outcome."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(96))  # "telegram:123" (channel:user id)
    actor_name: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16))  # ok, refused, failed
    detail: Mapped[str | None] = mapped_column(Text)  # JSON


class QuestionFixRow(Base):
    """A question corrected during the contest (wording, key, or voided), and what the
    re-grading touched."""

    __tablename__ = "question_fixes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # wording, key, void
    before: Mapped[str] = mapped_column(Text)  # JSON
    after: Mapped[str] = mapped_column(Text)  # JSON
    by: Mapped[str] = mapped_column(String(96))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts_touched: Mapped[int] = mapped_column(Integer, default=0)
    persons_touched: Mapped[int] = mapped_column(Integer, default=0)


class BroadcastRow(Base):
    """A message to a segment of contestants, sent through the outbox
    (``broadcast:<id>:<person>`` keys), with one progress message kept updated."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_by: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    segment: Mapped[str] = mapped_column(Text)  # JSON: {"kind": ..., ...}
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # draft, sending, done, cancelled
    total: Mapped[int] = mapped_column(Integer, default=0)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    report_chat: Mapped[str | None] = mapped_column(String(96))  # channel:chat id
    report_message_id: Mapped[int | None] = mapped_column(BigInteger)


class FeedbackRow(Base):
    """A contestant's question or complaint, and the organisers' answer."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_status", "status", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id"))
    question_id: Mapped[int | None] = mapped_column(ForeignKey("questions.id"))
    position: Mapped[int | None] = mapped_column(Integer)  # 0-based, in that attempt
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))  # open, answered, closed
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by: Mapped[str | None] = mapped_column(String(96))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ContestStateRow(Base):
    """Decisions taken while the contest runs (the official prediction figure, the round-2
    session code, confirmations), one value per key."""

    __tablename__ = "contest_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)  # JSON
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(96))


class QualifierRow(Base):
    """The confirmed list of round 2: who goes on, at which round-1 rank."""

    __tablename__ = "qualifiers"

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id"))
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_by: Mapped[str] = mapped_column(String(96))


class PrizeRow(Base):
    """The confirmed prize allocation (from round-2 results)."""

    __tablename__ = "prizes"

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), primary_key=True)
    prize: Mapped[str] = mapped_column(String(16))  # first, second, third, consolation
    rank: Mapped[int] = mapped_column(Integer)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id"))
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_by: Mapped[str] = mapped_column(String(96))


class CodeTryRow(Base):
    """Tries of the round-2 session code, for rate limiting (5 per 10 minutes)."""

    __tablename__ = "code_tries"
    __table_args__ = (Index("ix_code_tries_person_at", "person_id", "tried_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    tried_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool] = mapped_column(Boolean)


class LinkCodeRow(Base):
    """A one-time code shown in one channel and typed in another to link two accounts
    of one person."""

    __tablename__ = "link_codes"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_by: Mapped[str | None] = mapped_column(String(96))


class DialogueRow(Base):
    """What a text-only channel's conversation is waiting for (a numbered menu, a typed
    value), per account: Zalo has no buttons."""

    __tablename__ = "dialogues"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[str] = mapped_column(Text)  # JSON
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
