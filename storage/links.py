"""One-time linking codes (``link_codes``) and the wrong codes typed per account.

Wrong tries are kept as one ``contest_state`` row per account (``linktry:<hash>``, the
recent times as JSON): an account not linked yet has no person to hang them on.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from contest.errors import Conflict
from storage import models as m
from storage.repositories import SqlRepository

CODES = cast(Table, m.LinkCodeRow.__table__)
STATE = cast(Table, m.ContestStateRow.__table__)
TRIES_KEPT = 20


def _tries_key(by: str) -> str:
    return "linktry:" + hashlib.sha256(by.encode("utf-8")).hexdigest()[:40]


class SqlLinkCodes(SqlRepository):
    async def add(self, code: str, person_id: int, now: datetime, expires_at: datetime) -> None:
        conn = await self._connection()
        await conn.execute(
            update(CODES)
            .where(CODES.c.person_id == person_id, CODES.c.used_at.is_(None))
            .values(used_at=now, used_by="replaced")
        )
        if await conn.scalar(select(CODES.c.person_id).where(CODES.c.code == code)) is not None:
            raise Conflict("link code taken")  # used before: codes are never reused
        try:
            await conn.execute(
                insert(CODES).values(
                    code=code, person_id=person_id, created_at=now, expires_at=expires_at
                )
            )
        except IntegrityError as exc:  # another process issued it at the same moment
            raise Conflict("link code taken") from exc

    async def use(self, code: str, by: str, now: datetime) -> int | None:
        conn = await self._connection()
        person_id = await conn.scalar(
            select(CODES.c.person_id).where(
                CODES.c.code == code, CODES.c.used_at.is_(None), CODES.c.expires_at > now
            )
        )
        if person_id is None:
            return None
        result = await conn.execute(
            update(CODES)
            .where(CODES.c.code == code, CODES.c.used_at.is_(None))
            .values(used_at=now, used_by=by[:96])
        )
        return int(person_id) if result.rowcount == 1 else None

    async def _tries(self, by: str) -> list[datetime] | None:
        conn = await self._connection()
        raw = await conn.scalar(select(STATE.c.value).where(STATE.c.key == _tries_key(by)))
        if raw is None:
            return None
        return [datetime.fromisoformat(value) for value in json.loads(raw)]

    async def wrong_tries(self, by: str, since: datetime) -> int:
        return sum(1 for at in (await self._tries(by) or []) if at >= since)

    async def record_wrong(self, by: str, now: datetime) -> None:
        conn = await self._connection()
        tries = await self._tries(by)
        value = json.dumps([at.isoformat() for at in [*(tries or []), now][-TRIES_KEPT:]])
        if tries is None:
            await conn.execute(
                insert(STATE).values(
                    key=_tries_key(by), value=value, updated_at=now, updated_by="link"
                )
            )
        else:
            await conn.execute(
                update(STATE)
                .where(STATE.c.key == _tries_key(by))
                .values(value=value, updated_at=now)
            )
