"""What the use cases need from the outside world, as Protocols.

``storage`` implements the repositories and the unit of work; ``scheduler`` the timer.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol

from contest.campaign import CampaignEvent
from contest.importing import QuestionRow, UnitRow
from contest.model import (
    Account,
    Attempt,
    AttemptItem,
    AttemptResult,
    AttemptStatus,
    AuditEntry,
    Channel,
    Group,
    Person,
    Position,
    Question,
    Role,
    StaffRole,
    Unit,
    UnitKind,
)
from contest.participation import Totals, UnitCounts
from contest.ports_round2 import Round2Repository
from contest.registration import Draft
from contest.rules import QuotaRules


@dataclass(frozen=True)
class UnitPage:
    kind: UnitKind
    units: list[Unit]
    page: int
    pages: int
    query: str | None = None


@dataclass(frozen=True)
class ImportSummary:
    created: int
    updated: int
    withdrawn: int = 0  # active questions missing from a replacing import


@dataclass(frozen=True)
class Notification:
    id: int
    key: str
    person_id: int | None
    kind: str
    payload: dict[str, Any]
    tries: int = 1  # sending attempts so far, this one included
    # Where it goes: the account the person used last, read with the claim (None: look it
    # up, or the notification names its own ``payload["to"]``).
    recipient: Account | None = None


class UnitRepository(Protocol):
    async def get(self, unit_id: int) -> Unit | None: ...
    async def by_code(self, code: str) -> Unit | None: ...
    async def page(self, kind: UnitKind, page: int, size: int, query: str | None) -> UnitPage: ...
    async def upsert(self, rows: Sequence[UnitRow]) -> ImportSummary: ...
    async def count(self) -> int: ...


# The key of a voided question on the answer path: every answer to it counts as correct.
VOIDED_KEY = -1


class QuestionRepository(Protocol):
    async def catalog(self, *, include_inactive: bool = False) -> list[Question]: ...
    async def get_many(self, ids: Sequence[int]) -> dict[int, Question]: ...
    async def answer_of(self, question_id: int) -> int | None:
        """The key of a question (VOIDED_KEY once it is voided: any answer is right)."""
        ...

    async def upsert(self, rows: Sequence[QuestionRow], *, replace: bool = False) -> ImportSummary:
        """Add or update by question text; with ``replace``, withdraw (deactivate) every
        active question the rows do not contain. Withdrawn questions stay for the attempts
        that drew them. A voided question stays withdrawn."""
        ...

    async def drawn(self, ids: Sequence[int]) -> set[int]:
        """Those of ``ids`` that some attempt drew."""
        ...

    async def count(self) -> int: ...


class PersonRepository(Protocol):
    async def by_account(self, account: Account) -> Person | None: ...
    async def by_phone(self, phone: str) -> Person | None: ...
    async def get(self, person_id: int) -> Person | None: ...
    async def set_unreachable(self, person_id: int, when: datetime | None) -> None:
        """Mark the person unreachable since ``when`` (None: reachable again)."""
        ...

    async def set_reminders(self, person_id: int, on: bool) -> None: ...

    async def add(
        self,
        *,
        account: Account,
        full_name: str,
        birth_date: date,
        phone: str,
        group: Group,
        unit_id: int | None,
        position: Position | None,
        ward_id: int | None,
        consent_at: datetime,
        registered_at: datetime,
    ) -> Person:
        """A new person with ``account`` linked to them."""
        ...


class AccountRepository(Protocol):
    """The channel accounts of persons (one person, one or more accounts)."""

    async def of_person(self, person_id: int) -> list[Account]: ...
    async def preferred(self, person_id: int) -> Account | None:
        """The account the person used last: where results and reminders go."""
        ...

    async def touch(self, account: Account, now: datetime) -> None:
        """The person used this account now."""
        ...

    async def link(self, account: Account, person_id: int, now: datetime) -> None:
        """Link one more account to a person (its use counts from now)."""
        ...


class DraftRepository(Protocol):
    async def get(self, account: Account) -> Draft | None: ...
    async def save(self, account: Account, draft: Draft, now: datetime) -> None: ...
    async def delete(self, account: Account) -> None: ...


class AttemptRepository(Protocol):
    async def create(
        self,
        *,
        person_id: int,
        round: int,
        number: int,
        started_at: datetime,
        deadline_at: datetime,
        items: Sequence[AttemptItem],
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> Attempt: ...
    async def get(self, attempt_id: int, *, lock: bool = False) -> Attempt | None: ...
    async def owned(
        self, attempt_id: int, account: Account, *, lock: bool = False
    ) -> Attempt | None:
        """The attempt, if it belongs to the person of ``account``."""
        ...

    async def in_progress(self, person_id: int, round: int) -> Attempt | None: ...
    async def count_for(self, person_id: int, round: int) -> int: ...
    async def results_for(self, person_id: int, round: int) -> list[AttemptResult]: ...
    async def results(self, round: int) -> list[AttemptResult]: ...
    async def best_results(self, round: int) -> list[AttemptResult]: ...
    async def record_answer(
        self, attempt_id: int, position: int, choice: int, correct: bool, now: datetime
    ) -> bool: ...
    async def finish(
        self,
        attempt_id: int,
        status: AttemptStatus,
        finished_at: datetime,
        correct: int,
        duration_seconds: float,
    ) -> bool: ...
    async def set_message(self, attempt_id: int, chat_id: int, message_id: int) -> None: ...
    async def expired_ids(self, now: datetime, limit: int) -> list[int]: ...
    async def warn_candidates(
        self, now: datetime, within_seconds: float, level: int
    ) -> list[int]: ...
    async def mark_warned(self, attempt_id: int, level: int) -> bool: ...
    async def open_deadlines(self) -> list[tuple[int, datetime]]: ...
    async def awaiting_prediction(self, person_id: int, now: datetime) -> Attempt | None:
        """The person's last attempt if it was submitted by its answers, has no prediction
        yet, its deadline has not passed and no attempt was started after it."""
        ...

    async def set_prediction(self, attempt_id: int, prediction: int) -> bool:
        """Store the prediction of a submitted attempt that has none (compare-and-set)."""
        ...

    async def ranking_results(self, round: int) -> list[AttemptResult]:
        """Every finished attempt of the round, with its prediction, locked persons left
        out (ranking by a rule that may pick another attempt than ``counting``)."""
        ...

    async def prediction_counts(self, round: int) -> tuple[int, int]:
        """(finished attempts of the round, of them with a prediction)."""
        ...

    async def recount(self, round: int, official: int | None) -> None:
        """Flag each person's counting attempt of the round again, by most correct, then
        (with ``official``) the prediction closest to it, then the shorter time, then the
        earlier submission."""
        ...


class ContestStateRepository(Protocol):
    """Decisions taken while the contest runs (``contest_state``: one text value per key)."""

    async def get(self, key: str) -> str | None: ...
    async def put(self, key: str, value: str, by: str, now: datetime) -> None: ...


class OutboxRepository(Protocol):
    async def add(
        self,
        key: str,
        person_id: int | None,
        kind: str,
        payload: dict[str, Any],
        now: datetime,
        *,
        not_before: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> bool:
        """Queue a notification once per ``key`` (False when the key is taken). It is not
        offered before ``not_before``, and ends as ``expired`` once ``expires_at`` passed."""
        ...

    async def claim(
        self,
        now: datetime,
        lease_seconds: float,
        limit: int,
        owner: str,
        kinds: Sequence[str] | None = None,
    ) -> list[Notification]:
        """Pending notifications (of ``kinds`` only, if given), oldest first."""
        ...

    async def expire(self, now: datetime) -> int:
        """End as ``expired`` the pending, unclaimed notifications whose ``expires_at`` has
        passed (they are never offered again); how many."""
        ...

    async def mark_sent(self, notification_id: int, now: datetime) -> None: ...
    async def end(
        self, notification_id: int, now: datetime, outcome: str, error: str | None = None
    ) -> None:
        """End a notification without a delivery (``blocked``, ``refused``, ``skipped``)."""
        ...

    async def retry_at(self, notification_id: int, error: str, when: datetime) -> None:
        """A transient failure: offer it again from ``when`` (its claim is dropped)."""
        ...

    async def end_pending(self, key: str, now: datetime, outcome: str) -> bool:
        """End the notification ``key`` if it is pending and unclaimed (it was delivered
        another way, e.g. shown in the reply itself); False when it is not."""
        ...

    async def mark_sent_many(self, notification_ids: Sequence[int], now: datetime) -> None:
        """``mark_sent`` for many at once (one statement)."""
        ...

    async def candidates(
        self,
        now: datetime,
        limit: int,
        *,
        kinds: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        first: Sequence[str] | None = None,
        after: int | None = None,
        lapsed: bool = False,
        channels: Collection[Channel] | None = None,
    ) -> list[Notification]:
        """Pending notifications a claim may take, oldest first (a read; ``take``
        decides): unclaimed ones, or with ``lapsed`` those whose claim ran out; of
        ``kinds`` only, or not of ``exclude``; ``first``: these kinds before the others;
        ``after``: ids above it only (a cursor through a long queue); ``channels``: only
        those naming no person or a person with an account on one of them."""
        ...

    async def recipients(self, person_ids: Sequence[int]) -> dict[int, Account]:
        """Each person's preferred account (the one used last)."""
        ...

    async def take(
        self, ids: Sequence[int], now: datetime, lease_seconds: float, owner: str
    ) -> dict[int, int]:
        """Claim these if they are still claimable (compare-and-set); the tries of each
        one taken, this one included."""
        ...

    async def release(self, ids: Sequence[int]) -> None:
        """Give back claimed notifications never tried: offered again at once."""
        ...


class StaffRepository(Protocol):
    """Roles granted in the chat (organisers in the settings are not stored)."""

    async def role_of(self, account: Account) -> StaffRole | None:
        """The account's active role, if any."""
        ...

    async def grant(
        self,
        account: Account,
        role: Role,
        *,
        unit_id: int | None,
        person_id: int | None,
        by: str,
        now: datetime,
    ) -> None:
        """Give ``account`` this role (replacing any other it had)."""
        ...

    async def revoke(self, account: Account, now: datetime) -> StaffRole | None:
        """Take the account's role away; the role it had, or None."""
        ...

    async def holders(self, role: Role | None = None, *, revoked: bool = False) -> list[StaffRole]:
        """Every active role (of one kind, if given); with ``revoked``, the revoked too."""
        ...


class AuditRepository(Protocol):
    async def record(self, entry: AuditEntry) -> None: ...
    async def page(self, offset: int, limit: int) -> list[AuditEntry]:
        """Newest first."""
        ...

    async def count(self) -> int: ...


class DialogueRepository(Protocol):
    """What a conversation waits for, per account (typed input, a numbered menu)."""

    async def get(self, account: Account) -> dict[str, Any] | None: ...
    async def put(self, account: Account, data: dict[str, Any], now: datetime) -> None: ...
    async def clear(self, account: Account) -> None: ...


class LinkCodeRepository(Protocol):
    """One-time codes that link another channel's account to a person (``link_codes``),
    and the wrong codes typed, per account, for rate limiting."""

    async def add(self, code: str, person_id: int, now: datetime, expires_at: datetime) -> None:
        """Store a new code (Conflict when the code is taken); earlier unused codes of the
        person stop working."""
        ...

    async def use(self, code: str, by: str, now: datetime) -> int | None:
        """Compare-and-set: mark an unused, unexpired code used; its person, else None."""
        ...

    async def wrong_tries(self, by: str, since: datetime) -> int: ...
    async def record_wrong(self, by: str, now: datetime) -> None: ...


@dataclass(frozen=True)
class Colleague:
    """A registered civil servant of a unit, as the unit's focal person sees them."""

    person_id: int
    full_name: str
    leader: bool
    finished: int  # finished attempts of the round
    in_progress: bool  # an attempt of the round is open now
    took_part: bool  # has a counting attempt in the round (a participant)
    best: float | None  # the counting attempt's share of correct answers (0..1)


@dataclass(frozen=True)
class Standing:
    """One row of the leaderboard: a person's counting attempt and its place.

    ``position`` is 1-based in the full order (most correct, shorter time, earlier
    submission); ``rank`` is the competition rank, shared by equal correct and time."""

    position: int
    rank: int
    person_id: int
    full_name: str
    place: str | None  # the unit of a civil servant, the ward of a citizen
    citizen: bool
    correct: int
    total: int
    duration_seconds: float
    finished_at: datetime
    prediction: int | None = None  # shown when the tie rule uses the prediction question


@dataclass(frozen=True)
class PersonLabel:
    """How the leaderboard names a person."""

    full_name: str
    place: str | None  # the unit of a civil servant, the ward of a citizen
    citizen: bool


class StatsRepository(Protocol):
    """Aggregates over the whole contest (the organisers' console)."""

    async def unit_counts(self, round: int) -> list[UnitCounts]:
        """Every unit's civil servants: registered, taking part, leaders taking part."""
        ...

    async def totals(self, round: int) -> Totals: ...
    async def participation(self, round: int) -> tuple[list[UnitCounts], Totals]:
        """``unit_counts`` and ``totals`` at once (one reading of the persons)."""
        ...

    async def colleagues(self, unit_id: int, round: int) -> list[Colleague]:
        """The unit's registered civil servants (locked ones left out)."""
        ...

    async def ranked_count(self, round: int) -> int:
        """How many persons have a counting attempt in the round (locked ones left out)."""
        ...

    async def standings(self, round: int, first: int, last: int) -> list[Standing]:
        """The leaderboard's rows at positions ``first``..``last`` (1-based, inclusive),
        locked persons left out; ranked as ``contest.scoring.rank`` ranks."""
        ...

    async def labels(self, person_ids: Sequence[int]) -> dict[int, PersonLabel]:
        """Names and places of a few persons (a leaderboard page ranked in memory)."""
        ...


class LockRepository(Protocol):
    """Locking a person out of attempts and rankings (compare-and-set on ``locked_at``)."""

    async def lock(self, person_id: int, when: datetime, reason: str) -> bool:
        """Lock the person unless already locked; False when they were."""
        ...

    async def unlock(self, person_id: int) -> bool:
        """Unlock the person if locked; False when they were not."""
        ...


class CampaignRepository(Protocol):
    """The campaign's reminders: which were handled, and their fan-out to the outbox."""

    async def handled(self, key: str) -> bool: ...
    async def mark(self, key: str, now: datetime, outcome: str) -> bool:
        """Record that the event ``key`` is handled; False when it already was."""
        ...

    async def fan_out(
        self, event: CampaignEvent, kind: str, now: datetime, *, attempts_allowed: int
    ) -> int:
        """One outbox row per person of the event's audience (not locked, reachable,
        reminders on); how many."""
        ...


# A question fixed during the contest: its kinds (``question_fixes.kind``).
FIX_WORDING = "wording"  # text or options corrected; nothing is re-graded
FIX_KEY = "key"  # the key corrected; every answer given to it is re-graded
FIX_VOID = "void"  # voided: correct for everyone who drew it, withdrawn from draws


@dataclass(frozen=True)
class QuestionState:
    """A question as the organisers see it when they fix it."""

    question: Question
    active: bool  # drawn by new attempts
    voided_at: datetime | None

    @property
    def voided(self) -> bool:
        return self.voided_at is not None


@dataclass(frozen=True)
class FixImpact:
    """What a fix of a question touches, counted before it is made."""

    attempts: int  # attempts that drew the question
    persons: int  # their persons
    in_progress: int  # of those attempts, still running (re-graded, finished as usual)
    changed_attempts: int  # finished attempts whose score changes
    changed_persons: int  # persons with such an attempt: they are told their new result


@dataclass(frozen=True)
class FixNotice:
    """The message a re-grade queues, one per person whose finished attempt changed:
    outbox key ``key_prefix + person id``."""

    kind: str
    key_prefix: str
    payload: dict[str, Any]
    now: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Regraded:
    items: int  # answers whose grade changed (unanswered ones too, for a void)
    attempts: int  # finished attempts whose score changed
    notified: int  # persons told (one message each)


@dataclass(frozen=True)
class QuestionFix:
    """A fix as recorded (``question_fixes``)."""

    id: int
    question_id: int
    kind: str
    before: dict[str, Any]
    after: dict[str, Any]
    by: str
    at: datetime
    attempts_touched: int
    persons_touched: int


class QuestionFixRepository(Protocol):
    """Fixing a question during the contest: what it touches, the re-grade (all in SQL, in
    the caller's transaction), and the record of fixes."""

    async def state(self, question_id: int, *, lock: bool = False) -> QuestionState | None:
        """The question with its flags; with ``lock``, its row is locked until the end of
        the transaction (PostgreSQL; SQLite's writers are serialised anyway)."""
        ...

    async def states(self) -> list[QuestionState]:
        """Every question of the bank, withdrawn and voided ones included, by id."""
        ...

    async def text_owner(self, text: str) -> int | None:
        """The question whose text is this one (case and spacing aside), if any."""
        ...

    async def impact(
        self, question_id: int, *, key: int | None = None, void: bool = False
    ) -> FixImpact:
        """What a new ``key`` (or a ``void``; neither: a wording fix) would touch."""
        ...

    async def set_key(self, question_id: int, old: int, new: int, now: datetime) -> bool:
        """Compare-and-set of the key; False when it is no longer ``old`` or voided."""
        ...

    async def void(self, question_id: int, now: datetime) -> bool:
        """Void and withdraw the question; False when it already was voided."""
        ...

    async def reword(
        self, question_id: int, text: str, options: tuple[str, str, str], now: datetime
    ) -> None: ...
    async def regrade(self, question_id: int, *, key: int | None, notice: FixNotice) -> Regraded:
        """Re-grade every item of the question with ``key`` (None: void, every item of it
        counts as correct, answered or not); recompute the finished attempts' scores and
        their persons' counting attempts; queue ``notice`` for each person with a finished
        attempt whose score changed. Attempts in progress get their items re-graded only."""
        ...

    async def settle(self, question_id: int, *, key: int | None, notice: FixNotice) -> Regraded:
        """After the fix is committed, in a transaction of its own: the re-grade again, for
        answers recorded meanwhile by presses that read the question before the fix
        committed (concurrent transactions of PostgreSQL; nothing to do where writers run
        one at a time). A person already told is not told twice."""
        ...

    async def record(self, fix: QuestionFix) -> int:
        """Store a fix (its ``id`` is ignored); the new id."""
        ...

    async def get(self, fix_id: int) -> QuestionFix | None: ...
    async def rounds_drawn(self, question_id: int, person_id: int) -> list[int]:
        """The rounds in which the person has a finished attempt that drew the question."""
        ...


class PendingRepository(Protocol):
    """Requests waiting for a confirmation (an uploaded file, a fix shown for review), by
    key, so a press in any process, or after a restart, finds them."""

    async def put(self, key: str, value: dict[str, Any], by: str, now: datetime) -> None: ...
    async def get(self, key: str) -> tuple[dict[str, Any], str, datetime] | None:
        """The value, who stored it, and when."""
        ...

    async def take(self, key: str) -> bool:
        """Remove it: the compare-and-set of a confirmation (False: gone already)."""
        ...

    async def purge(self, prefix: str, before: datetime) -> int:
        """Remove those under ``prefix`` stored before ``before``."""
        ...


class UploadReader(Protocol):
    """Reads a file sent in the chat (CSV or XLSX, within the chat's size cap) into its
    header and rows, read one by one; raises ImportRejected (``storage.files``)."""

    def __call__(
        self, path: str, data: bytes
    ) -> tuple[list[str], Iterator[Mapping[str, str | None]]]: ...


@dataclass(frozen=True)
class FeedbackItem:
    """A contestant's question or complaint (``/gopy``), maybe about one question of one of
    their attempts (``position``: 0-based in that attempt), and what became of it: ``open``,
    ``answered`` (the answer went to the contestant; the item is closed) or ``closed``
    (without an answer)."""

    id: int
    person_id: int
    text: str
    created_at: datetime
    status: str
    attempt_id: int | None = None
    question_id: int | None = None
    position: int | None = None
    answer: str | None = None
    answered_by: str | None = None
    answered_at: datetime | None = None
    closed_at: datetime | None = None


class FeedbackRepository(Protocol):
    async def add(
        self,
        *,
        person_id: int,
        text: str,
        now: datetime,
        attempt_id: int | None = None,
        question_id: int | None = None,
        position: int | None = None,
    ) -> FeedbackItem: ...
    async def get(self, feedback_id: int) -> FeedbackItem | None: ...
    async def sent_since(self, person_id: int, since: datetime) -> list[datetime]:
        """When the person sent each item after ``since``, oldest first (the rate limit)."""
        ...

    async def open_page(self, offset: int, limit: int, *, newest_first: bool) -> list[FeedbackItem]:
        """Open items, oldest (or newest) first."""
        ...

    async def count_open(self) -> int: ...
    async def answer(self, feedback_id: int, answer: str, by: str, now: datetime) -> bool:
        """Answer and close an open item (compare-and-set); False when it was not open."""
        ...

    async def close(self, feedback_id: int, now: datetime) -> bool:
        """Close an open item without an answer (compare-and-set); False when not open."""
        ...


class SegmentKind(StrEnum):
    """Who a broadcast goes to."""

    ALL = "all"  # everyone registered
    NO_ATTEMPT = "no_attempt"  # registered, no round-1 attempt yet
    ONE_LEFT = "one_left"  # exactly one round-1 attempt left
    UNIT_KIND = "unit_kind"  # civil servants of one kind of unit
    UNIT = "unit"  # civil servants of one unit
    FOCAL = "focal"  # the units' focal persons


@dataclass(frozen=True)
class Segment:
    kind: SegmentKind
    unit_kind: UnitKind | None = None
    unit_id: int | None = None


@dataclass(frozen=True)
class Audience:
    """A segment now: who would get a broadcast, and who is left out (blocked the bot,
    locked)."""

    recipients: int
    unreachable: int
    locked: int


@dataclass(frozen=True)
class Broadcast:
    id: int
    created_by: str
    created_at: datetime
    segment: Segment
    text: str  # as the organiser typed it (plain text)
    status: str  # draft, sending, done, cancelled
    total: int  # recipients (the preview's count for a draft, the rows queued once sent)
    confirmed_at: datetime | None = None
    finished_at: datetime | None = None
    report_to: Account | None = None  # the organiser's account: progress and report
    report_message_id: int | None = None  # the progress message, once posted
    rows: tuple[int, int] | None = None  # first and last outbox id of its fan-out


@dataclass(frozen=True)
class BroadcastCounts:
    delivered: int
    blocked: int  # the person blocked the bot (or the chat is gone)
    failed: int  # refused by the platform, expired, nowhere to send
    pending: int


class BroadcastRepository(Protocol):
    async def audience(self, segment: Segment, round: int, attempts: int) -> Audience: ...
    async def create(
        self, *, created_by: str, now: datetime, segment: Segment, text: str, total: int
    ) -> int:
        """A draft; its id."""
        ...

    async def get(self, broadcast_id: int) -> Broadcast | None: ...
    async def start(
        self,
        broadcast_id: int,
        created_by: str,
        now: datetime,
        *,
        drafted_after: datetime,
        report_to: Account,
    ) -> bool:
        """Draft -> sending (compare-and-set: its author's draft, not older than
        ``drafted_after``); False when it was not such a draft."""
        ...

    async def cancel(self, broadcast_id: int, created_by: str) -> bool:
        """Draft -> cancelled (compare-and-set)."""
        ...

    async def fan_out(
        self,
        broadcast: Broadcast,
        kind: str,
        now: datetime,
        expires_at: datetime,
        *,
        round: int,
        attempts: int,
    ) -> int:
        """One outbox row per person of the segment (key ``broadcast:<id>:<person>``),
        locked and unreachable persons left out, in one statement; records the count and
        the rows on the broadcast; how many."""
        ...

    async def sending(self) -> list[Broadcast]: ...
    async def counts(self, broadcast: Broadcast, kind: str) -> BroadcastCounts: ...
    async def finish(self, broadcast_id: int, now: datetime) -> bool:
        """Sending -> done (compare-and-set)."""
        ...

    async def set_report_message(self, broadcast_id: int, message_id: int | None) -> None: ...
    async def unreachable_accounts(self) -> list[Account]:
        """Every account of the persons marked unreachable."""
        ...


class UnitOfWork(Protocol):
    units: UnitRepository
    questions: QuestionRepository
    persons: PersonRepository
    accounts: AccountRepository
    drafts: DraftRepository
    attempts: AttemptRepository
    outbox: OutboxRepository
    staff: StaffRepository
    audit: AuditRepository
    dialogues: DialogueRepository
    links: LinkCodeRepository
    stats: StatsRepository
    broadcasts: BroadcastRepository
    feedback: FeedbackRepository
    locks: LockRepository
    campaign: CampaignRepository
    fixes: QuestionFixRepository
    pending: PendingRepository
    round2: Round2Repository
    state: ContestStateRepository

    async def __aenter__(self) -> UnitOfWork: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = ...) -> UnitOfWork: ...


class AttemptFinisher(Protocol):
    """What finishing an attempt needs: the compare-and-set, then the person's results."""

    async def finish(
        self,
        attempt_id: int,
        status: AttemptStatus,
        finished_at: datetime,
        correct: int,
        duration_seconds: float,
    ) -> bool: ...
    async def results_for(self, person_id: int, round: int) -> list[AttemptResult]: ...
    async def count_for(self, person_id: int, round: int) -> int: ...


class PressStore(AttemptFinisher, Protocol):
    """The answer path's own transaction: ``async with`` opens it for writing; leaving
    without ``commit()`` rolls back. An implementation may run it closer to the database
    driver than a full unit of work, since a contest peaks on this one request."""

    async def __aenter__(self) -> PressStore: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def owned(self, attempt_id: int, account: Account) -> Attempt | None:
        """The attempt, if it belongs to the person of ``account``; its row is locked until
        the end of the transaction. Item states may be read from just before the lock was
        granted: ``record_answer``'s compare-and-set is what guards each answer."""
        ...

    async def answer_of(self, question_id: int) -> int | None: ...
    async def record_answer(
        self, attempt_id: int, position: int, choice: int, correct: bool, now: datetime
    ) -> bool: ...
    async def notify(
        self,
        key: str,
        person_id: int,
        kind: str,
        payload: dict[str, Any],
        now: datetime,
        *,
        not_before: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        """``OutboxRepository.add`` in the press's transaction."""
        ...

    async def commit(self) -> None: ...


class PressStoreFactory(Protocol):
    def __call__(self) -> PressStore: ...


class UnitOfWorkPresses:
    """A press store over a unit of work: the default, for any ``UnitOfWorkFactory``."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def __aenter__(self) -> UnitOfWorkPresses:
        await self._uow.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._uow.__aexit__(exc_type, exc, tb)

    async def owned(self, attempt_id: int, account: Account) -> Attempt | None:
        return await self._uow.attempts.owned(attempt_id, account, lock=True)

    async def answer_of(self, question_id: int) -> int | None:
        return await self._uow.questions.answer_of(question_id)

    async def record_answer(
        self, attempt_id: int, position: int, choice: int, correct: bool, now: datetime
    ) -> bool:
        return await self._uow.attempts.record_answer(attempt_id, position, choice, correct, now)

    async def finish(
        self,
        attempt_id: int,
        status: AttemptStatus,
        finished_at: datetime,
        correct: int,
        duration_seconds: float,
    ) -> bool:
        return await self._uow.attempts.finish(
            attempt_id, status, finished_at, correct, duration_seconds
        )

    async def notify(
        self,
        key: str,
        person_id: int,
        kind: str,
        payload: dict[str, Any],
        now: datetime,
        *,
        not_before: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        await self._uow.outbox.add(
            key, person_id, kind, payload, now, not_before=not_before, expires_at=expires_at
        )

    async def results_for(self, person_id: int, round: int) -> list[AttemptResult]:
        return await self._uow.attempts.results_for(person_id, round)

    async def count_for(self, person_id: int, round: int) -> int:
        return await self._uow.attempts.count_for(person_id, round)

    async def commit(self) -> None:
        await self._uow.commit()


class AttemptTimer(Protocol):
    """Schedules the deadline (and its warnings) of an attempt; only an optimisation."""

    def arm(self, attempt_id: int, deadline_at: datetime) -> None: ...
    def disarm(self, attempt_id: int) -> None: ...


class NullTimer:
    """A timer that schedules nothing (the periodic sweep still closes attempts)."""

    def arm(self, attempt_id: int, deadline_at: datetime) -> None:
        return None

    def disarm(self, attempt_id: int) -> None:
        return None


@dataclass(frozen=True)
class ExportRequest:
    """What the organisers' workbook is made of: a round's results, and the quota the
    participation sheet judges the units by."""

    round: int
    quota: QuotaRules
    at: datetime  # when it was asked for (aware): the workbook is as of about then
    # The tie rule in force (``TieBreak`` values) and the prediction's official figure.
    tie_break: tuple[str, ...] = ("time",)
    official: int | None = None


@dataclass(frozen=True)
class ExportedWorkbook:
    """An XLSX workbook, and what it holds."""

    data: bytes
    contestants: int  # rows of the contestants' sheet (every registered person)
    ranked: int  # of them, in the ranking
    attempts: int
    questions: int  # rows of the item analysis
    seconds: float  # how long it took to build


class Exporter(Protocol):
    """Builds the organisers' workbook away from the caller's event loop (another process),
    so that the bot keeps answering while it is made."""

    async def workbook(self, request: ExportRequest) -> ExportedWorkbook: ...
