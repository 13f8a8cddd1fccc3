"""Engine and session factory. Nothing connects at import time."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.sqlite_inline import inline_creator

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///contest.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000
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
    url: str = DEFAULT_DATABASE_URL, *, pg_pool_size: int | None = None, **kwargs: Any
) -> AsyncEngine:
    """An async engine; SQLite gets WAL, NORMAL sync, a busy timeout, foreign keys and
    ``BEGIN IMMEDIATE`` for writing transactions; PostgreSQL a fixed pool of
    ``pg_pool_size`` connections (PG_POOL_SIZE by default)."""
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
        kwargs.setdefault("async_creator", inline_creator(parsed.database))
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(engine):
        _configure_sqlite(engine)
    return engine


def configure_sqlite_connection(connection: Any) -> None:
    """WAL, NORMAL sync, a busy timeout and foreign keys on a new SQLite connection (a
    ``sqlite3`` connection or SQLAlchemy's adapter of one); BEGIN is left to the caller."""
    # Let us emit BEGIN ourselves (pysqlite's implicit BEGIN is deferred).
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
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


def writer_lock(engine: AsyncEngine) -> asyncio.Lock | None:
    """The lock every writing transaction of this process takes first, on SQLite.

    SQLite has one writer at a time, and statements run on the event loop here
    (``storage.sqlite_inline``): writers of this process must queue on this lock, never
    in SQLite's busy handler, which would block the loop while the holder cannot finish.
    """
    if not is_sqlite(engine):
        return None
    lock = _WRITER_LOCKS.get(engine.sync_engine)
    if lock is None:
        lock = _WRITER_LOCKS[engine.sync_engine] = asyncio.Lock()
    return lock


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A writing transaction on a plain connection (leases, migrations)."""
    lock = writer_lock(engine)
    if lock is not None:
        await lock.acquire()
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(contest_write=True)
            async with conn.begin():
                yield conn
    finally:
        if lock is not None:
            lock.release()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
