"""The answer path on the database driver itself.

Every A/B/C press is one short write transaction: read the attempt with its items, read the
answer key, record the answer with a compare-and-set. Through SQLAlchemy's asyncio layer
(session, greenlet hand-offs, result processing) those few statements cost about ten times
what the database spends on them, and the press is the request a contest peaks on. So this
module runs them on the driver connection: ``sqlite3`` for SQLite (on a connection of its
own, used under the process's writer lock) and ``asyncpg`` for PostgreSQL (a connection
from the engine's pool, the attempt row locked ``FOR UPDATE``).

The statements read and write exactly what the SQLAlchemy models store (naive UTC times,
SQLite's ``YYYY-MM-DD HH:MM:SS.ffffff`` text), so both paths share one database. Everything
else, finishing an attempt included, stays on the unit of work (``storage.uow``).
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from contest.model import Account, Attempt, AttemptItem, AttemptResult, AttemptStatus
from storage.db import (
    PG_POOL_SIZE,
    acquire_writer,
    busy_deadline,
    busy_error,
    configure_sqlite_connection,
    writer_lock,
)
from storage.sqlite_inline import DatabaseBusy, InlineConnection, is_busy, retry_busy

_ATTEMPT_COLUMNS = (
    "a.id, a.person_id, a.round, a.number, a.started_at, a.deadline_at, a.status, "
    "a.finished_at, a.correct_count, a.duration_seconds, a.warned, a.chat_id, a.message_id"
)
OWNED = (
    f"SELECT {_ATTEMPT_COLUMNS} FROM attempts a JOIN accounts c ON c.person_id = a.person_id "
    "WHERE a.id = :attempt_id AND c.channel = :channel AND c.external_id = :external_id"
)
ITEMS = (
    "SELECT position, question_id, option_order, choice, correct, answered_at "
    "FROM attempt_items WHERE attempt_id = :attempt_id ORDER BY position"
)
# A voided question's key is contest.ports.VOIDED_KEY (-1): every answer to it is right.
ANSWER_OF = (
    "SELECT CASE WHEN voided_at IS NULL THEN answer ELSE -1 END FROM questions "
    "WHERE id = :question_id"
)
RECORD_ANSWER = (
    "UPDATE attempt_items SET choice = :choice, correct = :correct, answered_at = :answered_at "
    "WHERE attempt_id = :attempt_id AND position = :position AND choice IS NULL"
)

FINISH = (
    "UPDATE attempts SET status = :status, finished_at = :finished_at, "
    "correct_count = :correct, duration_seconds = :duration "
    "WHERE id = :attempt_id AND status = 'in_progress'"
)
# After a finish: flag the person's counting attempt of that round (most correct, shorter
# time, earlier submission: contest.scoring.result_key), so ranking reads flagged rows.
RECOUNT = (
    "UPDATE attempts SET counting = COALESCE(id = ("
    "SELECT b.id FROM attempts b WHERE b.person_id = attempts.person_id "
    "AND b.round = attempts.round AND b.status <> 'in_progress' "
    "ORDER BY b.correct_count DESC, COALESCE(b.duration_seconds, 0), b.finished_at, b.id "
    "LIMIT 1"
    "), false) "
    "WHERE person_id = (SELECT person_id FROM attempts WHERE id = :attempt_id) "
    "AND round = (SELECT round FROM attempts WHERE id = :attempt_id)"
)
# The same for every person and round at once (rows written without a finish: imports of
# past results, the benchmark's seed).
RECOUNT_ALL = (
    "UPDATE attempts SET counting = (id IN ("
    "SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY person_id, round "
    "ORDER BY correct_count DESC, COALESCE(duration_seconds, 0), finished_at, id) AS pick "
    "FROM attempts WHERE status <> 'in_progress') picks WHERE pick = 1))"
)
RESULTS_FOR = (
    "SELECT id, person_id, round, number, correct_count, question_count, duration_seconds, "
    "finished_at, status FROM attempts "
    "WHERE person_id = :person_id AND round = :round AND status <> 'in_progress'"
)
COUNT_FOR = "SELECT count(*) FROM attempts WHERE person_id = :person_id AND round = :round"
NOTIFY = (
    "INSERT INTO outbox (key, person_id, kind, payload, created_at, tries, not_before, "
    "expires_at) VALUES (:key, :person_id, :kind, :payload, :created_at, 0, :not_before, "
    ":expires_at) ON CONFLICT (key) DO NOTHING"
)

SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # what SQLAlchemy's SQLite DateTime stores


def numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """``:name`` parameters to asyncpg's ``$1``, ``$2``…; returns the SQL and the names in
    order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return re.sub(r":([a-z_]+)", number, sql), tuple(names)


def _utc_naive(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None)


def _sqlite_utc(value: datetime) -> str:
    return _utc_naive(value).strftime(SQLITE_TIME_FORMAT)


def _answer_params(
    attempt_id: int, position: int, choice: int, correct: bool, now: Any
) -> dict[str, Any]:
    return {
        "attempt_id": attempt_id,
        "position": position,
        "choice": choice,
        "correct": correct,
        "answered_at": now,
    }


def _finish_params(
    attempt_id: int, status: AttemptStatus, finished_at: Any, correct: int, duration: float
) -> dict[str, Any]:
    return {
        "attempt_id": attempt_id,
        "status": status.value,
        "finished_at": finished_at,
        "correct": correct,
        "duration": duration,
    }


def _owner_params(attempt_id: int, account: Account) -> dict[str, Any]:
    return {
        "attempt_id": attempt_id,
        "channel": account.channel.value,
        "external_id": account.user_id,
    }


def _notify_params(
    key: str,
    person_id: int,
    kind: str,
    payload: dict[str, Any],
    times: tuple[Any, Any, Any],
) -> dict[str, Any]:
    created_at, not_before, expires_at = times
    return {
        "key": key,
        "person_id": person_id,
        "kind": kind,
        "payload": json.dumps(payload, ensure_ascii=False),
        "created_at": created_at,
        "not_before": not_before,
        "expires_at": expires_at,
    }


def _attempt(row: Any, items: list[AttemptItem], when: Any) -> Attempt:
    return Attempt(
        id=row[0],
        person_id=row[1],
        round=row[2],
        number=row[3],
        started_at=when(row[4]),
        deadline_at=when(row[5]),
        status=AttemptStatus(row[6]),
        finished_at=when(row[7]),
        correct_count=row[8],
        duration_seconds=row[9],
        warned=row[10],
        chat_id=row[11],
        message_id=row[12],
        items=items,
    )


def _items(rows: Any, when: Any) -> list[AttemptItem]:
    return [
        AttemptItem(
            position=position,
            question_id=question_id,
            order=(int(order[0]), int(order[1]), int(order[2])),
            choice=choice,
            correct=None if correct is None else bool(correct),
            answered_at=when(answered_at),
        )
        for position, question_id, order, choice, correct, answered_at in rows
    ]


def driver_results(rows: Any, when: Any = None) -> list[AttemptResult]:
    """Results from driver rows of (id, person_id, round, number, correct_count,
    question_count, duration_seconds, finished_at, status[, prediction])."""
    when = when or driver_utc
    if rows and len(rows[0]) > 9:
        return [
            AttemptResult(
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                row[6] or 0.0,
                when(row[7]),
                AttemptStatus(row[8]),
                row[9],
            )
            for row in rows
        ]
    return [
        AttemptResult(
            attempt_id=row[0],
            person_id=row[1],
            round=row[2],
            number=row[3],
            correct=row[4],
            total=row[5],
            duration_seconds=row[6] or 0.0,
            finished_at=when(row[7]),
            status=AttemptStatus(row[8]),
        )
        for row in rows
    ]


def driver_utc(value: str | datetime | None) -> Any:
    """A UTC time as a driver returns it (SQLite's text, PostgreSQL's naive datetime), as
    an aware datetime; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)


def _is_driver_error(error: BaseException | None) -> bool:
    if error is None:
        return False
    if isinstance(error, sqlite3.Error):
        return True
    module = type(error).__module__
    return module.startswith("asyncpg")


def _as_dbapi_error(error: BaseException) -> DBAPIError:
    """A driver's error as SQLAlchemy's, so that it is logged like every other database
    failure: by its kind only (its message can quote a row)."""
    return DBAPIError(None, None, error, hide_parameters=True)


class SqlitePresses:
    """One press's transaction on a SQLite connection kept for the answer path.

    The process's writer lock is held for the whole transaction, so the one connection is
    never used by two presses at once; ``BEGIN IMMEDIATE`` keeps other processes out. While
    another process holds the write lock, BEGIN IMMEDIATE is retried asynchronously (the
    event loop keeps serving), up to the engine's bound (``db.busy_deadline``); then the
    press fails with ``db.busy_error()``, having written nothing.
    """

    def __init__(self, factory: DriverPressStores) -> None:
        self._factory = factory
        self._db: sqlite3.Connection | None = None

    async def __aenter__(self) -> SqlitePresses:
        factory = self._factory
        lock = factory.lock
        assert lock is not None
        deadline = await acquire_writer(lock, factory.engine)
        try:
            try:
                db = factory.sqlite_connection()
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if not is_busy(error):
                    raise
                # Another process holds the write lock (or one the connection's set-up
                # needs): wait for it without blocking the loop, up to the deadline.
                await retry_busy(
                    lambda: factory.sqlite_connection().execute("BEGIN IMMEDIATE"),
                    deadline=busy_deadline(factory.engine) if deadline is None else deadline,
                    error=error,
                )
                db = factory.sqlite_connection()
        except DatabaseBusy as error:
            lock.release()
            raise busy_error(error) from error
        except sqlite3.Error as error:
            lock.release()
            raise _as_dbapi_error(error) from error
        except BaseException:
            lock.release()
            raise
        self._db = db
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        db, self._db = self._db, None
        lock = self._factory.lock
        assert lock is not None
        try:
            if db is not None and db.in_transaction:
                db.rollback()
        finally:
            lock.release()
        if isinstance(exc, sqlite3.Error):
            raise _as_dbapi_error(exc) from exc

    def _live(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the press transaction is over")
        return self._db

    async def owned(self, attempt_id: int, account: Account) -> Attempt | None:
        db = self._live()
        row = db.execute(OWNED, _owner_params(attempt_id, account)).fetchone()
        if row is None:
            return None
        rows = db.execute(ITEMS, {"attempt_id": attempt_id}).fetchall()
        return _attempt(row, _items(rows, driver_utc), driver_utc)

    async def answer_of(self, question_id: int) -> int | None:
        row = self._live().execute(ANSWER_OF, {"question_id": question_id}).fetchone()
        return None if row is None else int(row[0])

    async def record_answer(
        self, attempt_id: int, position: int, choice: int, correct: bool, now: datetime
    ) -> bool:
        params = _answer_params(attempt_id, position, choice, correct, _sqlite_utc(now))
        return self._live().execute(RECORD_ANSWER, params).rowcount == 1

    async def finish(
        self,
        attempt_id: int,
        status: AttemptStatus,
        finished_at: datetime,
        correct: int,
        duration_seconds: float,
    ) -> bool:
        params = _finish_params(
            attempt_id, status, _sqlite_utc(finished_at), correct, duration_seconds
        )
        if self._live().execute(FINISH, params).rowcount != 1:
            return False
        self._live().execute(RECOUNT, {"attempt_id": attempt_id})
        return True

    async def results_for(self, person_id: int, round: int) -> list[AttemptResult]:
        rows = self._live().execute(RESULTS_FOR, {"person_id": person_id, "round": round})
        return driver_results(rows.fetchall())

    async def count_for(self, person_id: int, round: int) -> int:
        row = self._live().execute(COUNT_FOR, {"person_id": person_id, "round": round})
        return int(row.fetchone()[0])

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
        times = tuple(None if t is None else _sqlite_utc(t) for t in (now, not_before, expires_at))
        params = _notify_params(key, person_id, kind, payload, (times[0], times[1], times[2]))
        self._live().execute(NOTIFY, params)

    async def commit(self) -> None:
        self._live().commit()


class _Numbered:
    """A statement in asyncpg's numbered style."""

    __slots__ = ("names", "sql")

    def __init__(self, sql: str) -> None:
        self.sql, self.names = numbered(sql)

    def args(self, params: dict[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


# One round trip on PostgreSQL: the attempt (locked), its items and their answer keys. The
# items come from the statement's snapshot, which a press that waited for the lock took
# before the other press committed: RECORD_ANSWER's "choice IS NULL" keeps that safe (the
# late press is told its question is stale).
_PG_OWNED = _Numbered(
    f"SELECT {_ATTEMPT_COLUMNS}, i.position, i.question_id, i.option_order, i.choice, "
    "i.correct, i.answered_at, CASE WHEN q.voided_at IS NULL THEN q.answer ELSE -1 END "
    "FROM attempts a JOIN accounts c ON c.person_id = a.person_id "
    "LEFT JOIN attempt_items i ON i.attempt_id = a.id "
    "LEFT JOIN questions q ON q.id = i.question_id "
    "WHERE a.id = :attempt_id AND c.channel = :channel AND c.external_id = :external_id "
    "ORDER BY i.position FOR UPDATE OF a"
)
_PG_ANSWER_OF = _Numbered(ANSWER_OF)
_PG_RECORD_ANSWER = _Numbered(RECORD_ANSWER)
_PG_FINISH = _Numbered(FINISH)
_PG_RECOUNT = _Numbered(RECOUNT)
_PG_RESULTS_FOR = _Numbered(RESULTS_FOR)
_PG_COUNT_FOR = _Numbered(COUNT_FOR)
_PG_NOTIFY = _Numbered(NOTIFY)


def _updated(status: object) -> int:
    """Rows an asyncpg ``execute`` changed, from its status line ("UPDATE 1")."""
    return int(str(status).split()[-1])


class PostgresPresses:
    """One press's transaction on an asyncpg connection from the engine's pool."""

    def __init__(self, factory: DriverPressStores) -> None:
        self._engine = factory.engine
        self._pool_size = factory.pool_size
        self._raw: Any = None
        self._conn: Any = None
        self._keys: dict[int, int | None] = {}  # answer keys read with the attempt

    async def __aenter__(self) -> PostgresPresses:
        import asyncpg

        # After a server restart every pooled connection is dead. SQLAlchemy's own path
        # would notice once and drop them all; here each is found at its BEGIN, thrown
        # away, and the next one tried, so that no press fails for it.
        for _ in range(self._pool_size + 1):
            raw = await self._engine.raw_connection()
            conn: Any = raw.driver_connection
            try:
                if conn.is_closed():
                    raise asyncpg.exceptions.ConnectionDoesNotExistError("closed")
                await conn.execute("BEGIN")
            except (asyncpg.exceptions.InterfaceError, asyncpg.PostgresConnectionError, OSError):
                await greenlet_spawn(raw.invalidate)
                continue
            except asyncpg.PostgresError as error:
                await greenlet_spawn(raw.invalidate)
                raise _as_dbapi_error(error) from error
            except BaseException:
                await greenlet_spawn(raw.invalidate)
                raise
            self._raw, self._conn = raw, conn
            return self
        raise _as_dbapi_error(ConnectionError("no live connection to PostgreSQL"))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        raw, conn = self._raw, self._conn
        self._raw = self._conn = None
        if raw is None:
            return
        try:
            if conn.is_in_transaction():
                await conn.execute("ROLLBACK")
        except BaseException:
            # Never hand a connection in an unknown state back to the pool.
            await greenlet_spawn(raw.invalidate)
            if exc is None:
                raise
        else:
            await greenlet_spawn(raw.close)
        if _is_driver_error(exc):
            assert exc is not None
            raise _as_dbapi_error(exc) from exc

    def _live(self) -> Any:
        if self._conn is None:
            raise RuntimeError("the press transaction is over")
        return self._conn

    async def owned(self, attempt_id: int, account: Account) -> Attempt | None:
        conn = self._live()
        params = _owner_params(attempt_id, account)
        rows = await conn.fetch(_PG_OWNED.sql, *_PG_OWNED.args(params))
        if not rows:
            return None
        items = [row[13:19] for row in rows if row[13] is not None]
        self._keys = {row[14]: row[19] for row in rows if row[13] is not None}
        return _attempt(rows[0], _items(items, driver_utc), driver_utc)

    async def answer_of(self, question_id: int) -> int | None:
        if question_id in self._keys:  # read in this transaction, with the attempt
            key = self._keys[question_id]
        else:
            key = await self._live().fetchval(_PG_ANSWER_OF.sql, question_id)
        return None if key is None else int(key)

    async def record_answer(
        self, attempt_id: int, position: int, choice: int, correct: bool, now: datetime
    ) -> bool:
        params = _answer_params(attempt_id, position, choice, correct, _utc_naive(now))
        status = await self._live().execute(_PG_RECORD_ANSWER.sql, *_PG_RECORD_ANSWER.args(params))
        return _updated(status) == 1

    async def finish(
        self,
        attempt_id: int,
        status: AttemptStatus,
        finished_at: datetime,
        correct: int,
        duration_seconds: float,
    ) -> bool:
        params = _finish_params(
            attempt_id, status, _utc_naive(finished_at), correct, duration_seconds
        )
        status_line = await self._live().execute(_PG_FINISH.sql, *_PG_FINISH.args(params))
        if _updated(status_line) != 1:
            return False
        await self._live().execute(_PG_RECOUNT.sql, attempt_id)
        return True

    async def results_for(self, person_id: int, round: int) -> list[AttemptResult]:
        params = {"person_id": person_id, "round": round}
        rows = await self._live().fetch(_PG_RESULTS_FOR.sql, *_PG_RESULTS_FOR.args(params))
        return driver_results(rows)

    async def count_for(self, person_id: int, round: int) -> int:
        params = {"person_id": person_id, "round": round}
        return int(await self._live().fetchval(_PG_COUNT_FOR.sql, *_PG_COUNT_FOR.args(params)))

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
        times = tuple(None if t is None else _utc_naive(t) for t in (now, not_before, expires_at))
        params = _notify_params(key, person_id, kind, payload, (times[0], times[1], times[2]))
        await self._live().execute(_PG_NOTIFY.sql, *_PG_NOTIFY.args(params))

    async def commit(self) -> None:
        await self._live().execute("COMMIT")


class DriverPressStores:
    """Opens press transactions on the engine's database (``ContestService(presses=...)``).

    ``close()`` closes the SQLite connection kept for the answer path.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.lock: asyncio.Lock | None = writer_lock(engine)
        self._sqlite: sqlite3.Connection | None = None
        # Dead pooled connections a press may meet at BEGIN (after a server restart).
        self.pool_size = int(getattr(engine.pool, "size", lambda: PG_POOL_SIZE)())

    @staticmethod
    def supports(engine: AsyncEngine) -> bool:
        """SQLite files opened inline (``storage.sqlite_inline``) and PostgreSQL on asyncpg."""
        url = engine.url
        if engine.dialect.name == "postgresql":
            return url.get_driver_name() == "asyncpg"
        return engine.dialect.name == "sqlite" and url.database not in (None, "", ":memory:")

    def __call__(self) -> SqlitePresses | PostgresPresses:
        if self.dialect == "sqlite":
            return SqlitePresses(self)
        return PostgresPresses(self)

    def sqlite_connection(self) -> sqlite3.Connection:
        if self._sqlite is None:
            database = make_url(self.engine.url).database
            assert database
            connection = InlineConnection.open(database)
            try:
                configure_sqlite_connection(connection)
            except BaseException:
                connection.close()  # a locked database: the caller retries with a new one
                raise
            self._sqlite = connection
        return self._sqlite

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
