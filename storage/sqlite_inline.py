"""SQLite for SQLAlchemy's asyncio engine without a thread per connection.

SQLAlchemy's ``sqlite+aiosqlite`` dialect drives aiosqlite, which runs every cursor call in
a worker thread: about a dozen thread hand-offs per answer, most of the database's cost on
the answer path. A local SQLite statement takes microseconds, so here the same dialect gets
a connection that runs them inline, on the event loop, behind aiosqlite's interface.

Waiting for the database must not happen inline, though. While another *process* (a
``contest-bot import-*`` run, another bot) holds SQLite's write lock, SQLite's own busy
handler would sleep on the event loop and freeze the whole bot. So these connections get a
busy timeout of BUSY_TIMEOUT_MS (next to nothing), and a statement that meets a locked
database is retried here, after an ``asyncio.sleep`` of BUSY_FIRST_DELAY doubling up to
BUSY_MAX_DELAY, until its deadline (BUSY_WAIT_SECONDS after the wait began, unless the
caller set one with :func:`waiting_until`); then it fails with :class:`DatabaseBusy`.
Writers of this process never wait for each other here: they queue on an asyncio lock
first (``storage.db.writer_lock``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

SQLITE_BUSY = 5  # primary result code; extended ones (BUSY_RECOVERY…) share its low byte
SQLITE_BUSY_SNAPSHOT = 517  # a stale read snapshot cannot write: waiting never helps
BUSY_TIMEOUT_MS = 1  # SQLite's own busy wait, on the loop: at most about a millisecond
BUSY_FIRST_DELAY = 0.002  # seconds before the first retry, doubling…
BUSY_MAX_DELAY = 0.1  # …up to this
BUSY_WAIT_SECONDS = 10.0  # how long a statement (a writer: in all) waits for a lock


class DatabaseBusy(sqlite3.OperationalError):
    """The database stayed locked by another connection for the whole wait (SQLITE_BUSY).

    Behind SQLAlchemy it is the ``orig`` of a ``sqlalchemy.exc.OperationalError``."""

    def __init__(self, waited: float) -> None:
        super().__init__(f"database is locked: gave up after {waited:.1f} s")
        self.sqlite_errorcode = SQLITE_BUSY
        self.sqlite_errorname = "SQLITE_BUSY"


def is_busy(error: BaseException) -> bool:
    """A locked database that waiting may get past (not a stale snapshot)."""
    code = getattr(error, "sqlite_errorcode", None)
    return (
        isinstance(error, sqlite3.OperationalError)
        and isinstance(code, int)
        and code & 0xFF == SQLITE_BUSY
        and code != SQLITE_BUSY_SNAPSHOT
    )


# The loop time at which a wait for a lock gives up, when a caller set one for all its
# statements (a writer: queueing for the lock, then BEGIN IMMEDIATE). None: each statement
# waits up to the connection's own bound.
_DEADLINE: ContextVar[float | None] = ContextVar("sqlite_busy_deadline", default=None)


@contextmanager
def waiting_until(deadline: float | None) -> Iterator[None]:
    """Statements run inside wait for a locked database until ``deadline`` (loop time)."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


async def retry_busy(
    function: Callable[[], T],
    *,
    deadline: float | None = None,
    bound: float = BUSY_WAIT_SECONDS,
    error: BaseException | None = None,
) -> T:
    """``function()``; while it finds the database locked, sleep (not blocking the loop)
    and call it again, until ``deadline`` (or the one set by :func:`waiting_until`, or
    ``bound`` seconds from now); then raise DatabaseBusy. ``error``: the busy error a first
    call, made by the caller, already met."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    delay = BUSY_FIRST_DELAY
    while True:
        if error is None:
            try:
                return function()
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                error = exc
        if deadline is None:
            deadline = _DEADLINE.get()
            if deadline is None:
                deadline = started + bound
        left = deadline - loop.time()
        if left <= 0:
            raise DatabaseBusy(loop.time() - started) from error
        error = None
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, BUSY_MAX_DELAY)


class _Cursor:
    """The awaitable cursor interface SQLAlchemy's adapter calls."""

    __slots__ = ("_bound", "_cursor")

    def __init__(self, cursor: sqlite3.Cursor, bound: float) -> None:
        self._cursor = cursor
        self._bound = bound

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> _Cursor:
        params = () if parameters is None else parameters
        try:
            self._cursor.execute(sql, params)
        except sqlite3.OperationalError as error:
            # A statement that met a locked database had no effect: wait and run it again.
            if not is_busy(error):
                raise
            await retry_busy(
                lambda: self._cursor.execute(sql, params), bound=self._bound, error=error
            )
        return self

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> _Cursor:
        # Not retried: the rows before a failing one would be written twice. Only writers
        # run it, after BEGIN IMMEDIATE, which holds the lock it could wait for.
        self._cursor.executemany(sql, seq)
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size or self._cursor.arraysize)

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _ImmediateQueue:
    """Stands in for aiosqlite's request queue: runs the function at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class InlineConnection:
    """An ``aiosqlite.Connection`` look-alike over a plain ``sqlite3.Connection``."""

    def __init__(
        self, connection: sqlite3.Connection, busy_wait: float = BUSY_WAIT_SECONDS
    ) -> None:
        self._conn: sqlite3.Connection | None = connection
        self._tx = _ImmediateQueue()
        self.busy_wait = busy_wait

    @staticmethod
    def open(database: str) -> sqlite3.Connection:
        """A plain ``sqlite3`` connection to ``database`` (a path or a ``file:`` URI) in
        autocommit mode (BEGIN is emitted by whoever uses it), with the short busy timeout:
        waiting for a lock is the caller's (``retry_busy``)."""
        return sqlite3.connect(
            database,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
            uri=database.startswith("file:"),
        )

    @property
    def _connection(self) -> sqlite3.Connection | None:
        return self._conn

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("Connection closed")
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._live().isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self._live().isolation_level = value

    def cursor(self) -> _Cursor:
        return _Cursor(self._live().cursor(), self.busy_wait)

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> _Cursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        connection = self._live()
        try:
            connection.commit()
        except sqlite3.OperationalError as error:
            # A COMMIT refused for a lock may be retried (not in WAL mode, where the writer
            # already holds every lock it needs; but the file may not be in WAL).
            if not is_busy(error):
                raise
            await retry_busy(connection.commit, bound=self.busy_wait, error=error)

    async def rollback(self) -> None:
        self._live().rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._live().create_function(*args, **kwargs)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def inline_creator(database: str, busy_wait: float = BUSY_WAIT_SECONDS) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine`` opening ``database`` inline; its
    statements wait up to ``busy_wait`` seconds for a locked database."""

    async def connect() -> InlineConnection:
        return InlineConnection(InlineConnection.open(database), busy_wait)

    return connect
