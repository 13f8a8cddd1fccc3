"""Named leases in the database: which process runs the singleton jobs right now.

A lease is held until ``expires_at``; its holder renews it well before then. When the
holder dies, the lease runs out and the next process to ask takes it over.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import write_transaction
from storage.models import LeaseRow

LEASES = cast(Table, LeaseRow.__table__)


async def try_acquire(
    engine: AsyncEngine, name: str, holder: str, now: datetime, ttl_seconds: float
) -> bool:
    """Take or renew the lease ``name`` for ``holder``; False while another holds it."""
    expires = now + timedelta(seconds=ttl_seconds)
    async with write_transaction(engine) as conn:
        result = cast(
            CursorResult[tuple[()]],
            await conn.execute(
                update(LEASES)
                .where(
                    LEASES.c.name == name,
                    or_(LEASES.c.holder == holder, LEASES.c.expires_at < now),
                )
                .values(holder=holder, expires_at=expires)
            ),
        )
        if result.rowcount == 1:
            return True
        insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        inserted = cast(
            CursorResult[tuple[()]],
            await conn.execute(
                insert(LEASES)
                .values(name=name, holder=holder, expires_at=expires)
                .on_conflict_do_nothing(index_elements=["name"])
            ),
        )
        return inserted.rowcount == 1


async def release(engine: AsyncEngine, name: str, holder: str) -> None:
    """Give the lease up at a clean shutdown, so another process need not wait it out."""
    async with write_transaction(engine) as conn:
        await conn.execute(
            update(LEASES)
            .where(LEASES.c.name == name, LEASES.c.holder == holder)
            .values(expires_at=datetime(1970, 1, 1, tzinfo=UTC))
        )


async def holder_of(engine: AsyncEngine, name: str) -> tuple[str, datetime] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(LEASES.c.holder, LEASES.c.expires_at).where(LEASES.c.name == name)
            )
        ).first()
    return (row.holder, row.expires_at) if row else None


async def take_over(
    engine: AsyncEngine, name: str, previous: str, holder: str, now: datetime, ttl_seconds: float
) -> bool:
    """Take the lease from ``previous`` whatever its expiry (its holder is known to be dead);
    False when someone else renewed or took it meanwhile."""
    expires = now + timedelta(seconds=ttl_seconds)
    async with write_transaction(engine) as conn:
        result = cast(
            CursorResult[tuple[()]],
            await conn.execute(
                update(LEASES)
                .where(LEASES.c.name == name, LEASES.c.holder == previous)
                .values(holder=holder, expires_at=expires)
            ),
        )
        return result.rowcount == 1
