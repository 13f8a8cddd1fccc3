"""Broadcasts in the database: drafts, the confirm compare-and-set, the fan-out of one to
the outbox in one INSERT … SELECT (10,000 rows in one statement), its progress counted
from its outbox rows, and the accounts of persons who blocked the bot."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, text, update

from contest.model import Account, Channel, UnitKind
from contest.ports import Audience, Broadcast, BroadcastCounts, Segment, SegmentKind
from storage import models as m
from storage.repositories import SqlRepository

BROADCASTS = cast(Table, m.BroadcastRow.__table__)
B = BROADCASTS.c

# Who a segment names (locked and unreachable persons are counted apart, then left out).
_SEGMENTS: dict[SegmentKind, str] = {
    SegmentKind.ALL: "",
    SegmentKind.NO_ATTEMPT: (
        " AND p.id NOT IN (SELECT a.person_id FROM attempts a WHERE a.round = :round)"
    ),
    SegmentKind.ONE_LEFT: (
        " AND p.id IN (SELECT a.person_id FROM attempts a WHERE a.round = :round"
        " GROUP BY a.person_id HAVING COUNT(*) = :used)"
    ),
    SegmentKind.UNIT_KIND: (
        " AND p.\"group\" = 'civil_servant'"
        " AND p.unit_id IN (SELECT u.id FROM units u WHERE u.kind = :unit_kind)"
    ),
    SegmentKind.UNIT: " AND p.\"group\" = 'civil_servant' AND p.unit_id = :unit_id",
    SegmentKind.FOCAL: (
        " AND p.id IN (SELECT s.person_id FROM staff_roles s WHERE s.role = 'focal'"
        " AND s.revoked_at IS NULL AND s.person_id IS NOT NULL"
        " UNION SELECT ac.person_id FROM staff_roles s JOIN accounts ac"
        " ON ac.channel = s.channel AND ac.external_id = s.external_id"
        " WHERE s.role = 'focal' AND s.revoked_at IS NULL)"
    ),
}
_REACHABLE = " AND p.locked_at IS NULL AND p.unreachable_at IS NULL"


def _segment_params(segment: Segment, round: int, attempts: int) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if segment.kind in (SegmentKind.NO_ATTEMPT, SegmentKind.ONE_LEFT):
        params["round"] = round
    if segment.kind is SegmentKind.ONE_LEFT:
        params["used"] = attempts - 1
    if segment.kind is SegmentKind.UNIT_KIND:
        assert segment.unit_kind is not None
        params["unit_kind"] = segment.unit_kind.value
    if segment.kind is SegmentKind.UNIT:
        params["unit_id"] = segment.unit_id
    return params


def segment_to_json(segment: Segment, rows: tuple[int, int] | None = None) -> str:
    data: dict[str, Any] = {"kind": segment.kind.value}
    if segment.unit_kind is not None:
        data["unit_kind"] = segment.unit_kind.value
    if segment.unit_id is not None:
        data["unit_id"] = segment.unit_id
    if rows is not None:
        data["rows"] = list(rows)  # the outbox ids its fan-out took, first and last
    return json.dumps(data)


def _segment_of(data: dict[str, Any]) -> Segment:
    unit_kind = data.get("unit_kind")
    unit_id = data.get("unit_id")
    return Segment(
        SegmentKind(data["kind"]),
        UnitKind(unit_kind) if unit_kind else None,
        int(unit_id) if unit_id is not None else None,
    )


def _account(value: str | None) -> Account | None:
    if not value or ":" not in value:
        return None
    channel, user_id = value.split(":", 1)
    return Account(Channel(channel), user_id)


def _broadcast(row: Any) -> Broadcast:
    data = json.loads(row.segment)
    rows = data.get("rows")
    return Broadcast(
        id=row.id,
        created_by=row.created_by,
        created_at=row.created_at,
        segment=_segment_of(data),
        text=row.text,
        status=row.status,
        total=row.total,
        confirmed_at=row.confirmed_at,
        finished_at=row.finished_at,
        report_to=_account(row.report_chat),
        report_message_id=row.report_message_id,
        rows=(int(rows[0]), int(rows[1])) if rows else None,
    )


_COUNTS = text(
    """
    SELECT COUNT(*) AS total,
           COUNT(CASE WHEN sent_at IS NULL THEN 1 END) AS pending,
           COUNT(CASE WHEN outcome = 'sent' THEN 1 END) AS delivered,
           COUNT(CASE WHEN outcome = 'blocked' THEN 1 END) AS blocked
    FROM outbox
    WHERE id BETWEEN :first AND :last AND kind = :kind AND substr(key, 1, :length) = :prefix
    """
)
_UNREACHABLE_ACCOUNTS = text(
    "SELECT a.channel, a.external_id FROM persons p JOIN accounts a ON a.person_id = p.id "
    "WHERE p.unreachable_at IS NOT NULL"
)


class SqlBroadcasts(SqlRepository):
    async def audience(self, segment: Segment, round: int, attempts: int) -> Audience:
        conn = await self._connection()
        sql = (
            "SELECT COUNT(*) AS everyone,"
            " COUNT(CASE WHEN p.locked_at IS NOT NULL THEN 1 END) AS locked,"
            " COUNT(CASE WHEN p.locked_at IS NULL AND p.unreachable_at IS NOT NULL THEN 1 END)"
            " AS unreachable"
            " FROM persons p WHERE 1 = 1" + _SEGMENTS[segment.kind]
        )
        row = (await conn.execute(text(sql), _segment_params(segment, round, attempts))).one()
        everyone, locked, unreachable = int(row.everyone), int(row.locked), int(row.unreachable)
        return Audience(everyone - locked - unreachable, unreachable, locked)

    async def create(
        self, *, created_by: str, now: datetime, segment: Segment, text: str, total: int
    ) -> int:
        conn = await self._connection()
        result = await conn.execute(
            insert(BROADCASTS)
            .values(
                created_by=created_by,
                created_at=now,
                segment=segment_to_json(segment),
                text=text,
                status="draft",
                total=total,
            )
            .returning(B.id)
        )
        return int(result.scalar_one())

    async def get(self, broadcast_id: int) -> Broadcast | None:
        conn = await self._connection()
        row = (await conn.execute(select(BROADCASTS).where(B.id == broadcast_id))).first()
        return _broadcast(row) if row else None

    async def start(
        self,
        broadcast_id: int,
        created_by: str,
        now: datetime,
        *,
        drafted_after: datetime,
        report_to: Account,
    ) -> bool:
        conn = await self._connection()
        result = await conn.execute(
            update(BROADCASTS)
            .where(
                B.id == broadcast_id,
                B.status == "draft",
                B.created_by == created_by,
                B.created_at >= drafted_after,
            )
            .values(status="sending", confirmed_at=now, report_chat=str(report_to))
        )
        return bool(result.rowcount == 1)

    async def cancel(self, broadcast_id: int, created_by: str) -> bool:
        conn = await self._connection()
        result = await conn.execute(
            update(BROADCASTS)
            .where(B.id == broadcast_id, B.status == "draft", B.created_by == created_by)
            .values(status="cancelled")
        )
        return bool(result.rowcount == 1)

    async def fan_out(
        self,
        broadcast: Broadcast,
        kind: str,
        now: datetime,
        expires_at: datetime,
        *,
        round: int,
        attempts: int,
    ) -> int:
        conn = await self._connection()
        sql = (
            "INSERT INTO outbox (key, person_id, kind, payload, created_at, tries, expires_at) "
            "SELECT :prefix || CAST(p.id AS TEXT), p.id, :kind, :payload, :now, 0, :expires "
            "FROM persons p WHERE 1 = 1"
            + _REACHABLE
            + _SEGMENTS[broadcast.segment.kind]
            + " ON CONFLICT (key) DO NOTHING RETURNING id"
        )
        params = {
            "prefix": broadcast_key_prefix(broadcast.id),
            "kind": kind,
            "payload": json.dumps({"broadcast_id": broadcast.id}),
            "now": now,
            "expires": expires_at,
            **_segment_params(broadcast.segment, round, attempts),
        }
        stmt = text(sql).bindparams(
            bindparam("now", type_=m.UTCDateTime), bindparam("expires", type_=m.UTCDateTime)
        )
        ids = (await conn.execute(stmt, params)).scalars().all()
        rows = (min(ids), max(ids)) if ids else None
        await conn.execute(
            update(BROADCASTS)
            .where(B.id == broadcast.id)
            .values(total=len(ids), segment=segment_to_json(broadcast.segment, rows))
        )
        return len(ids)

    async def sending(self) -> list[Broadcast]:
        conn = await self._connection()
        rows = await conn.execute(select(BROADCASTS).where(B.status == "sending").order_by(B.id))
        return [_broadcast(row) for row in rows]

    async def counts(self, broadcast: Broadcast, kind: str) -> BroadcastCounts:
        if broadcast.rows is None:
            return BroadcastCounts(0, 0, 0, 0)
        prefix = broadcast_key_prefix(broadcast.id)
        conn = await self._connection()
        first, last = broadcast.rows
        row = (
            await conn.execute(
                _COUNTS,
                {
                    "first": first,
                    "last": last,
                    "kind": kind,
                    "length": len(prefix),
                    "prefix": prefix,
                },
            )
        ).one()
        total, pending = int(row.total), int(row.pending)
        delivered, blocked = int(row.delivered), int(row.blocked)
        return BroadcastCounts(delivered, blocked, total - pending - delivered - blocked, pending)

    async def finish(self, broadcast_id: int, now: datetime) -> bool:
        conn = await self._connection()
        result = await conn.execute(
            update(BROADCASTS)
            .where(B.id == broadcast_id, B.status == "sending")
            .values(status="done", finished_at=now)
        )
        return bool(result.rowcount == 1)

    async def set_report_message(self, broadcast_id: int, message_id: int | None) -> None:
        conn = await self._connection()
        await conn.execute(
            update(BROADCASTS).where(B.id == broadcast_id).values(report_message_id=message_id)
        )

    async def unreachable_accounts(self) -> list[Account]:
        conn = await self._connection()
        rows = await conn.execute(_UNREACHABLE_ACCOUNTS)
        return [Account(Channel(r.channel), r.external_id) for r in rows]


def broadcast_key_prefix(broadcast_id: int) -> str:
    """The outbox keys of a broadcast: ``broadcast:<id>:<person>``."""
    return f"broadcast:{broadcast_id}:"
