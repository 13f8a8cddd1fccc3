"""The campaign's reminders in the database: which events were handled (contest_state rows
``campaign:<event>``) and the fan-out of one to the outbox in one INSERT … SELECT."""

from __future__ import annotations

import json
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from contest.campaign import Audience, CampaignEvent
from storage import models as m
from storage.repositories import SqlRepository

STATE = cast(Table, m.ContestStateRow.__table__)

# Who hears a reminder: not locked, reachable, reminders on, registered by now.
_BASE = (
    "FROM persons p WHERE p.locked_at IS NULL AND p.unreachable_at IS NULL "
    "AND NOT p.reminders_off AND p.registered_at <= :now"
)
_AUDIENCES = {
    Audience.REGISTERED: "",
    Audience.NO_ATTEMPT: (
        " AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.person_id = p.id AND a.round = 1)"
    ),
    Audience.ATTEMPT_LEFT: (
        " AND (SELECT count(*) FROM attempts a WHERE a.person_id = p.id AND a.round = 1)"
        " < :attempts"
        " AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.person_id = p.id AND a.round = 1"
        " AND a.status = 'in_progress')"
    ),
    Audience.QUALIFIERS: " AND p.id IN (SELECT q.person_id FROM qualifiers q)",
}


class SqlCampaign(SqlRepository):
    async def handled(self, key: str) -> bool:
        conn = await self._connection()
        found = await conn.scalar(select(STATE.c.key).where(STATE.c.key == _state_key(key)))
        return found is not None

    async def mark(self, key: str, now: datetime, outcome: str) -> bool:
        conn = await self._connection()
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        result = await conn.execute(
            insert(STATE)
            .values(
                key=_state_key(key),
                value=json.dumps({"outcome": outcome}),
                updated_at=now,
                updated_by="scheduler",
            )
            .on_conflict_do_nothing(index_elements=["key"])
        )
        return bool(result.rowcount == 1)

    async def fan_out(
        self, event: CampaignEvent, kind: str, now: datetime, *, attempts_allowed: int
    ) -> int:
        conn = await self._connection()
        payload = json.dumps({"event": event.key, "reminder": event.reminder.value})
        sql = (
            "INSERT INTO outbox (key, person_id, kind, payload, created_at, tries, "
            "not_before, expires_at) "
            "SELECT :prefix || CAST(p.id AS TEXT), p.id, :kind, :payload, :now, 0, "
            ":not_before, :expires "
            + _BASE
            + _AUDIENCES[event.audience]
            + " ON CONFLICT (key) DO NOTHING"
        )
        params = {
            "prefix": f"reminder:{event.key}:",
            "kind": kind,
            "payload": payload,
            "now": now,
            "not_before": max(now, event.at),
            "expires": event.valid_until,
            "attempts": attempts_allowed,
        }
        stmt = text(sql).bindparams(
            bindparam("now", type_=m.UTCDateTime),
            bindparam("not_before", type_=m.UTCDateTime),
            bindparam("expires", type_=m.UTCDateTime),
        )
        result = await conn.execute(stmt, params)
        return int(result.rowcount or 0)


def _state_key(key: str) -> str:
    return f"campaign:{key}"[:64]
