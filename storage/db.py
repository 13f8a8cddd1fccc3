"""Engine and session factory. Nothing connects at import time."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.sqlite_inline import (
    BUSY_TIMEOUT_MS,
    BUSY_WAIT_SECONDS,
    DatabaseBusy,
    inline_creator,
    waiting_until,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///contest.db"
# SQLite's own busy wait sleeps on the event loop: next to nothing. Waiting for another
# process's lock happens in storage.sqlite_inline.retry_busy, asynchronously, for up to
# SQLITE_BUSY_WAIT_SECONDS (a writer: queueing in this process included).
SQLITE_BUSY_TIMEOUT_MS = BUSY_TIMEOUT_MS
SQLITE_BUSY_WAIT_SECONDS = BUSY_WAIT_SECONDS
PG_POOL_SIZE = 20  # connections per process (CONTEST_DB_POOL_SIZE)


def normalize_url(url: str) -> str:
    """Accept plain driver-less URLs and pick the async driver for them."""
    parsed = make_url(url)
    driver = parsed.drivername
    if driver in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif driver in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _search_path(url: str) -> tuple[str, str | None]:
    """Take a libpq-style ``options=-csearch_path=...`` off a PostgreSQL URL: asyncpg wants
    it as a server setting instead (one schema per environment or per test)."""
    parsed = make_url(url)
    options = parsed.query.get("options")
    if not parsed.drivername.startswith("postgresql") or not isinstance(options, str):
        return url, None
    prefix = "-csearch_path="
    if not options.startswith(prefix):
        return url, None
    rest = {k: v for k, v in parsed.query.items() if k != "options"}
    return parsed.set(query=rest).render_as_string(hide_password=False), options[len(prefix) :]


def create_engine(
    url: str = DEFAULT_DATABASE_URL,
    *,
    pg_pool_size: int | None = None,
    sqlite_busy_wait: float = SQLITE_BUSY_WAIT_SECONDS,
    **kwargs: Any,
) -> AsyncEngine:
    """An async engine; SQLite gets WAL, NORMAL sync, foreign keys, ``BEGIN IMMEDIATE`` for
    writing transactions, and waits for another process's lock without blocking the event
    loop, up to ``sqlite_busy_wait`` seconds (then DatabaseBusy); PostgreSQL a fixed pool
    of ``pg_pool_size`` connections (PG_POOL_SIZE by default)."""
    url, search_path = _search_path(normalize_url(url))
    if search_path:
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("server_settings", {})["search_path"] = search_path
        kwargs["connect_args"] = connect_args
    # SQL errors must not carry personal data (phone, birth date) into the logs.
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.drivername.startswith("postgresql"):
        # A fixed pool, no overflow: under load an overflow connection is opened, used
        # once and closed again, press after press (a new server process each time); at
        # 64 presses in flight that churn cost 0.4 of a core and a third of the throughput.
        # Presses beyond the pool wait for a connection instead. PostgreSQL's default limit
        # is 100 connections in all: mind it with several processes.
        kwargs.setdefault("pool_size", pg_pool_size or PG_POOL_SIZE)
        kwargs.setdefault("max_overflow", 0)
    if parsed.drivername == "sqlite+aiosqlite" and parsed.database not in (None, "", ":memory:"):
        kwargs.setdefault("async_creator", inline_creator(parsed.database, sqlite_busy_wait))
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(engine):
        _BUSY_WAITS[engine.sync_engine] = sqlite_busy_wait
        _configure_sqlite(engine)
    return engine


def configure_sqlite_connection(connection: Any) -> None:
    """WAL, NORMAL sync, the short busy timeout and foreign keys on a new SQLite connection
    (a ``sqlite3`` connection or SQLAlchemy's adapter of one); BEGIN is left to the caller.
    On a plain ``sqlite3`` connection a locked database fails it at once: wrap the call in
    ``retry_busy``."""
    # Let us emit BEGIN ourselves (pysqlite's implicit BEGIN is deferred).
    connection.isolation_level = None
    cursor = connection.cursor()
    # First, so that the pragmas below do not wait on the loop (sqlite3's default is 5 s).
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        configure_sqlite_connection(dbapi_connection)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A deferred BEGIN that reads and then writes fails with "database is locked"
        # whatever the busy timeout: writers (units of work opened for writing, and
        # ``write_transaction``) take the lock up front. Anything else only reads.
        write = connection.get_execution_options().get("contest_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


_WRITER_LOCKS: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()
_BUSY_WAITS: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def writer_lock(engine: AsyncEngine) -> asyncio.Lock | None:
    """The lock every writing transaction of this process takes first, on SQLite.

    SQLite has one writer at a time, and statements run on the event loop here
    (``storage.sqlite_inline``): writers of this process queue on this lock (in FIFO order,
    for free), and only the one holding it waits, asynchronously, for another process's
    write lock. Take it with ``acquire_writer``, which bounds the wait.
    """
    if not is_sqlite(engine):
        return None
    lock = _WRITER_LOCKS.get(engine.sync_engine)
    if lock is None:
        lock = _WRITER_LOCKS[engine.sync_engine] = asyncio.Lock()
    return lock


def busy_deadline(engine: AsyncEngine | None) -> float:
    """For a writer starting now: the loop time at which it gives up waiting for the
    database (its turn in this process, then another process's lock)."""
    wait = SQLITE_BUSY_WAIT_SECONDS
    if engine is not None:
        wait = _BUSY_WAITS.get(engine.sync_engine, wait)
    return asyncio.get_running_loop().time() + wait


def busy_error(error: DatabaseBusy) -> OperationalError:
    """DatabaseBusy as SQLAlchemy reports it from a statement, for the paths that raise it
    themselves: every writer that gives up fails with the same exception."""
    return OperationalError(None, None, error, hide_parameters=True)


async def acquire_writer(lock: asyncio.Lock, engine: AsyncEngine | None) -> float | None:
    """Take this process's writer lock for a writer of ``engine``.

    A free lock is taken at once, and None returned: the writer's wait, if any, begins at
    its BEGIN IMMEDIATE, bounded there. Otherwise the writer queues until its deadline at
    most (busy_deadline: the writers ahead may be waiting for another process's lock),
    busy_error() beyond it, and the deadline is returned for its BEGIN IMMEDIATE.
    """
    if not lock.locked():
        # No deadline, no timer on this path: a bounded wait would cost ~10 µs a write.
        await lock.acquire()
        return None
    deadline = busy_deadline(engine)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout_at(deadline):
            await lock.acquire()
    except TimeoutError:
        raise busy_error(DatabaseBusy(loop.time() - started)) from None
    return deadline


@asynccontextmanager
async def write_transaction(
    engine: AsyncEngine, *, foreign_keys: bool = True
) -> AsyncIterator[AsyncConnection]:
    """A writing transaction on a plain connection (leases, migrations).

    ``foreign_keys=False`` (migrations): on SQLite, foreign keys are off for the
    transaction, which may then rebuild a table that others refer to (SQLite alters a table
    by copying it); every key is checked before the commit instead."""
    lock = writer_lock(engine)
    deadline = None if lock is None else await acquire_writer(lock, engine)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(contest_write=True)
            driver: Any = None
            if not foreign_keys and is_sqlite(engine):
                # Outside a transaction: SQLite ignores this pragma inside one.
                driver = (await conn.get_raw_connection()).driver_connection
                await driver.execute("PRAGMA foreign_keys=OFF")
            try:
                # BEGIN IMMEDIATE waits (asynchronously) for another process's write lock
                # until the deadline; what runs inside holds the lock and needs no such wait.
                with waiting_until(deadline):
                    await conn.begin()
                yield conn
                if driver is not None:
                    broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                    if broken:
                        raise IntegrityError(
                            "PRAGMA foreign_key_check", None, Exception(f"{len(broken)} rows")
                        )
                await conn.commit()
            except BaseException:
                if driver is not None:
                    await conn.invalidate()  # never back to the pool with foreign keys off
                raise
            if driver is not None:
                await driver.execute("PRAGMA foreign_keys=ON")
    finally:
        if lock is not None:
            lock.release()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
