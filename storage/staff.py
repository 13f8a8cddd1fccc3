"""Repositories of the organisers' console: staff roles, the audit log, and what a
conversation waits for (dialogue state)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from contest.model import Account, AuditEntry, Channel, Role, StaffRole
from storage import models as m
from storage.repositories import SqlRepository

ROLES = cast(Table, m.StaffRoleRow.__table__)
AUDIT = cast(Table, m.AuditRow.__table__)
DIALOGUES = cast(Table, m.DialogueRow.__table__)
_ROLE_NAMES = {Role.ORGANISER: "organiser", Role.FOCAL: "focal"}
_ROLES_BY_NAME = {name: role for role, name in _ROLE_NAMES.items()}


def _staff(row: Any) -> StaffRole:
    return StaffRole(
        account=Account(Channel(row.channel), row.external_id),
        role=_ROLES_BY_NAME[row.role],
        unit_id=row.unit_id,
        person_id=row.person_id,
        granted_by=row.granted_by,
        granted_at=row.granted_at,
        revoked_at=row.revoked_at,
    )


class SqlStaff(SqlRepository):
    async def role_of(self, account: Account) -> StaffRole | None:
        conn = await self._connection()
        row = (
            await conn.execute(
                select(ROLES).where(
                    ROLES.c.channel == account.channel.value,
                    ROLES.c.external_id == account.user_id,
                    ROLES.c.revoked_at.is_(None),
                )
            )
        ).first()
        return _staff(row) if row else None

    async def grant(
        self,
        account: Account,
        role: Role,
        *,
        unit_id: int | None,
        person_id: int | None,
        by: str,
        now: datetime,
    ) -> None:
        if role is Role.CONTESTANT:
            raise ValueError("a contestant is no staff role")
        conn = await self._connection()
        values = {
            "role": _ROLE_NAMES[role],
            "unit_id": unit_id,
            "person_id": person_id,
            "granted_by": by,
            "granted_at": now,
            "revoked_at": None,
        }
        changed = await conn.execute(
            update(ROLES)
            .where(ROLES.c.channel == account.channel.value, ROLES.c.external_id == account.user_id)
            .values(**values)
        )
        if changed.rowcount == 0:
            await conn.execute(
                insert(ROLES).values(
                    channel=account.channel.value, external_id=account.user_id, **values
                )
            )

    async def revoke(self, account: Account, now: datetime) -> StaffRole | None:
        current = await self.role_of(account)
        if current is None:
            return None
        conn = await self._connection()
        await conn.execute(
            update(ROLES)
            .where(ROLES.c.channel == account.channel.value, ROLES.c.external_id == account.user_id)
            .values(revoked_at=now)
        )
        return current

    async def holders(self, role: Role | None = None, *, revoked: bool = False) -> list[StaffRole]:
        conn = await self._connection()
        stmt = select(ROLES).order_by(ROLES.c.id)
        if not revoked:
            stmt = stmt.where(ROLES.c.revoked_at.is_(None))
        if role is not None:
            stmt = stmt.where(ROLES.c.role == _ROLE_NAMES[role])
        return [_staff(row) for row in await conn.execute(stmt)]


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        at=row.at,
        actor=row.actor,
        action=row.action,
        outcome=row.outcome,
        target=row.target,
        actor_name=row.actor_name,
        detail=json.loads(row.detail) if row.detail else None,
        id=row.id,
    )


class SqlAudit(SqlRepository):
    async def record(self, entry: AuditEntry) -> None:
        conn = await self._connection()
        await conn.execute(
            insert(AUDIT).values(
                at=entry.at,
                actor=entry.actor[:96],
                actor_name=entry.actor_name[:255] if entry.actor_name else None,
                action=entry.action[:64],
                target=entry.target[:255] if entry.target else None,
                outcome=entry.outcome[:16],
                detail=json.dumps(entry.detail, ensure_ascii=False, default=str)
                if entry.detail
                else None,
            )
        )

    async def page(self, offset: int, limit: int) -> list[AuditEntry]:
        conn = await self._connection()
        rows = await conn.execute(
            select(AUDIT).order_by(AUDIT.c.id.desc()).offset(offset).limit(limit)
        )
        return [_entry(row) for row in rows]

    async def count(self) -> int:
        conn = await self._connection()
        return int(await conn.scalar(select(func.count()).select_from(AUDIT)) or 0)


class SqlDialogues(SqlRepository):
    async def get(self, account: Account) -> dict[str, Any] | None:
        conn = await self._connection()
        data = await conn.scalar(
            select(DIALOGUES.c.data).where(
                DIALOGUES.c.channel == account.channel.value,
                DIALOGUES.c.external_id == account.user_id,
            )
        )
        return cast(dict[str, Any], json.loads(data)) if data else None

    async def put(self, account: Account, data: dict[str, Any], now: datetime) -> None:
        conn = await self._connection()
        dialect = conn.dialect.name
        upsert = (pg_insert if dialect == "postgresql" else sqlite_insert)(DIALOGUES).values(
            channel=account.channel.value,
            external_id=account.user_id,
            data=json.dumps(data, ensure_ascii=False),
            updated_at=now,
        )
        await conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["channel", "external_id"],
                set_={"data": upsert.excluded.data, "updated_at": upsert.excluded.updated_at},
            )
        )

    async def clear(self, account: Account) -> None:
        conn = await self._connection()
        await conn.execute(
            delete(DIALOGUES).where(
                DIALOGUES.c.channel == account.channel.value,
                DIALOGUES.c.external_id == account.user_id,
            )
        )
