"""Bringing a database to the current schema with the Alembic migrations."""

from __future__ import annotations

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


async def migrate(engine: AsyncEngine) -> None:
    """Apply every pending migration (idempotent; safe with several processes). This is
    the first thing every command does with the database: a database that cannot be
    reached or opened is reported as DatabaseUnavailable."""
    try:
        async with engine.connect():
            pass  # reach the server (or open the file) once; the pool keeps the connection
    except (OSError, DBAPIError) as exc:
        raise DatabaseUnavailable(root_cause(exc)) from exc
    async with write_transaction(engine) as connection:
        await connection.run_sync(_upgrade)


def root_cause(exc: BaseException) -> str:
    """The name of the innermost error (the driver's), without its message: messages can
    quote a URL or a row."""
    inner: BaseException = getattr(exc, "orig", None) or exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    return type(inner).__name__
