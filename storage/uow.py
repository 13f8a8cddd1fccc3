"""The unit of work: one AsyncSession, one transaction, per use-case call."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from contest.ports import (
    AccountRepository,
    AttemptRepository,
    AuditRepository,
    BroadcastRepository,
    CampaignRepository,
    ContestStateRepository,
    DialogueRepository,
    DraftRepository,
    FeedbackRepository,
    LinkCodeRepository,
    LockRepository,
    OutboxRepository,
    PendingRepository,
    PersonRepository,
    QuestionFixRepository,
    QuestionRepository,
    StaffRepository,
    StatsRepository,
    UnitRepository,
)
from contest.ports_round2 import Round2Repository
from storage.broadcasts import SqlBroadcasts
from storage.campaign import SqlCampaign
from storage.db import acquire_writer, is_sqlite, session_factory, writer_lock
from storage.feedback import SqlFeedback
from storage.fixes import SqlPending, SqlQuestionFixes
from storage.links import SqlLinkCodes
from storage.repositories import (
    SqlAccounts,
    SqlAttempts,
    SqlDrafts,
    SqlOutbox,
    SqlPersons,
    SqlQuestions,
    SqlRepository,
    SqlUnits,
)
from storage.round2 import SqlRound2
from storage.sqlite_inline import waiting_until
from storage.staff import SqlAudit, SqlDialogues, SqlStaff
from storage.state import SqlContestState
from storage.stats import SqlLocks, SqlStats


class SqlUnitOfWork:
    """``async with uow:`` opens a transaction; leaving without ``commit()`` rolls back."""

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

    # Every repository of a unit of work, by attribute name (one instance per transaction).
    REPOSITORIES: ClassVar[dict[str, type[SqlRepository]]] = {
        "units": SqlUnits,
        "questions": SqlQuestions,
        "persons": SqlPersons,
        "accounts": SqlAccounts,
        "drafts": SqlDrafts,
        "attempts": SqlAttempts,
        "outbox": SqlOutbox,
        "staff": SqlStaff,
        "audit": SqlAudit,
        "dialogues": SqlDialogues,
        "links": SqlLinkCodes,
        "stats": SqlStats,
        "broadcasts": SqlBroadcasts,
        "feedback": SqlFeedback,
        "locks": SqlLocks,
        "campaign": SqlCampaign,
        "fixes": SqlQuestionFixes,
        "pending": SqlPending,
        "round2": SqlRound2,
        "state": SqlContestState,
    }

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        write: bool,
        sqlite: bool,
        writer_lock: asyncio.Lock | None = None,
        engine: AsyncEngine | None = None,
    ) -> None:
        self._sessions = sessions
        self._write = write
        self._sqlite = sqlite
        self._writer_lock = writer_lock if write else None
        self._engine = engine
        self.session: AsyncSession | None = None

    async def __aenter__(self) -> SqlUnitOfWork:
        deadline: float | None = None
        if self._writer_lock is not None:
            # SQLite has one writer at a time. Writers of this process queue here, in FIFO
            # order and without cost; the one in front waits for another process's lock at
            # its BEGIN IMMEDIATE, asynchronously. The whole wait is bounded: past the
            # deadline the unit of work fails with db.busy_error() (see db.writer_lock).
            deadline = await acquire_writer(self._writer_lock, self._engine)
        session = self._sessions()
        self.session = session
        try:
            if self._sqlite:
                # Take the write lock up front (BEGIN IMMEDIATE) or read in a deferred BEGIN.
                with waiting_until(deadline):
                    await session.connection(execution_options={"contest_write": self._write})
        except BaseException:
            await self._close()
            raise
        repositories = tuple(factory(session) for factory in self.REPOSITORIES.values())
        self._repositories: tuple[SqlRepository, ...] = repositories
        for name, repository in zip(self.REPOSITORIES, repositories, strict=True):
            setattr(self, name, repository)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        assert self.session is not None
        try:
            if self.session.in_transaction():
                await self.session.rollback()
        finally:
            try:
                await self.session.close()
            finally:
                self.session = None
                if self._writer_lock is not None:
                    self._writer_lock.release()

    async def commit(self) -> None:
        assert self.session is not None
        await self.session.commit()
        for repository in self._repositories:
            repository.forget_connection()  # the next statement opens a new transaction


class SqlUnitOfWorkFactory:
    """Creates units of work bound to one engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)
        self.sqlite = is_sqlite(engine)
        self.writer_lock = writer_lock(engine)

    def __call__(self, *, write: bool = True) -> SqlUnitOfWork:
        return SqlUnitOfWork(
            self.sessions,
            write=write,
            sqlite=self.sqlite,
            writer_lock=self.writer_lock,
            engine=self.engine,
        )
