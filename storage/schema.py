"""Bringing a database to the current schema with the Alembic migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import write_transaction

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x43434843  # any constant: serialises migrations of several processes


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    command.upgrade(alembic_config(connection), "head")


class DatabaseUnavailable(Exception):
    """The database cannot be reached or opened (the driver's error is the cause)."""


class DatabaseReadOnly(DatabaseUnavailable):
    """The database can be read but not written: a read-only file, folder or disk, or a
    read-only PostgreSQL server or transaction. ``path`` is the SQLite file, if any."""

    def __init__(self, kind: str, path: str | None = None) -> None:
        super().__init__(kind)
        self.path = path


_PG_READ_ONLY = "25006"  # read_only_sql_transaction (also a hot standby's refusal)


def is_read_only_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it wraps) is the database refusing to be written."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        code = getattr(error, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_READONLY:
            return True
        if _PG_READ_ONLY in (getattr(error, "sqlstate", None), getattr(error, "pgcode", None)):
            return True
        if "readonly database" in str(error):  # drivers that keep no code
            return True
        pending += [getattr(error, "orig", None), error.__cause__, error.__context__]
    return False


def _sqlite_path(engine: AsyncEngine) -> str | None:
    database = engine.url.database
    return database if engine.dialect.name == "sqlite" and database else None


async def migrate(engine: AsyncEngine) -> None:
    """Apply every pending migration (idempotent; safe with several processes), and check
    that the database takes writes. This is the first thing every command does with the
    database: one that cannot be reached or opened is reported as DatabaseUnavailable, one
    that cannot be written as DatabaseReadOnly (instead of failing at the first press)."""
    try:
        async with engine.connect():
            pass  # reach the server (or open the file) once; the pool keeps the connection
    except (OSError, DBAPIError) as exc:
        if is_read_only_error(exc):  # SQLite: the WAL set-up already writes
            raise DatabaseReadOnly(root_cause(exc), _sqlite_path(engine)) from exc
        raise DatabaseUnavailable(root_cause(exc)) from exc
    try:
        async with write_transaction(engine, foreign_keys=False) as connection:
            await connection.run_sync(_upgrade)
            # Nothing to migrate writes nothing: write one row back as it is, so that a
            # read-only database is found now.
            await connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
    except DBAPIError as exc:
        if is_read_only_error(exc):
            raise DatabaseReadOnly(root_cause(exc), _sqlite_path(engine)) from exc
        raise


def root_cause(exc: BaseException) -> str:
    """The name of the innermost error (the driver's), without its message: messages can
    quote a URL or a row."""
    inner: BaseException = getattr(exc, "orig", None) or exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    return type(inner).__name__
