"""The unit of work: one AsyncSession, one transaction, per use-case call."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from contest.ports import (
    AttemptRepository,
    DraftRepository,
    OutboxRepository,
    PersonRepository,
    QuestionRepository,
    UnitRepository,
)
from storage.db import is_sqlite, session_factory
from storage.repositories import (
    SqlAttempts,
    SqlDrafts,
    SqlOutbox,
    SqlPersons,
    SqlQuestions,
    SqlUnits,
)


class SqlUnitOfWork:
    """``async with uow:`` opens a transaction; leaving without ``commit()`` rolls back."""

    units: UnitRepository
    questions: QuestionRepository
    persons: PersonRepository
    drafts: DraftRepository
    attempts: AttemptRepository
    outbox: OutboxRepository

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, write: bool, sqlite: bool
    ) -> None:
        self._sessions = sessions
        self._write = write
        self._sqlite = sqlite
        self.session: AsyncSession | None = None

    async def __aenter__(self) -> SqlUnitOfWork:
        session = self._sessions()
        self.session = session
        if self._sqlite:
            # Take the write lock up front (BEGIN IMMEDIATE) or read in a deferred BEGIN.
            await session.connection(execution_options={"contest_write": self._write})
        self.units = SqlUnits(session)
        self.questions = SqlQuestions(session)
        self.persons = SqlPersons(session)
        self.drafts = SqlDrafts(session)
        self.attempts = SqlAttempts(session)
        self.outbox = SqlOutbox(session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.session is not None
        try:
            await self.session.rollback()
        finally:
            await self.session.close()
            self.session = None

    async def commit(self) -> None:
        assert self.session is not None
        await self.session.commit()


class SqlUnitOfWorkFactory:
    """Creates units of work bound to one engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)
        self.sqlite = is_sqlite(engine)

    def __call__(self, *, write: bool = True) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.sessions, write=write, sqlite=self.sqlite)
