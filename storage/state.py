"""Decisions taken while the contest runs, one text value per key (``contest_state``): the
prediction question's official figure (``prediction_official``, a whole number as text)."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage import models as m
from storage.repositories import SqlRepository

STATE = cast(Table, m.ContestStateRow.__table__)


class SqlContestState(SqlRepository):
    async def get(self, key: str) -> str | None:
        conn = await self._connection()
        value = await conn.scalar(select(STATE.c.value).where(STATE.c.key == key))
        return str(value) if value is not None else None

    async def put(self, key: str, value: str, by: str, now: datetime) -> None:
        conn = await self._connection()
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(STATE).values(key=key, value=value, updated_at=now, updated_by=by[:96])
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["key"],
                set_={"value": value, "updated_at": now, "updated_by": by[:96]},
            )
        )
