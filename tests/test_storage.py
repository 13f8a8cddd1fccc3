"""Storage on SQLite and PostgreSQL: migrations, SQLite settings and locking, repositories,
compare-and-set under concurrency, and UTC times."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import unicodedata
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from contest.errors import Conflict, ContestError
from contest.importing import QuestionRow, UnitRow
from contest.model import Account, AttemptItem, AttemptStatus, Group, Person, Position, UnitKind
from contest.rules import LOCAL_TZ, ContestRules
from contest.scoring import best_per_person, best_result
from contest.services import RESULT_NOTIFICATION, ContestService
from storage import models as m
from storage.db import is_sqlite, write_transaction
from storage.presses import RECOUNT_ALL
from storage.schema import alembic_config, migrate
from storage.uow import SqlUnitOfWorkFactory

T0 = datetime(2024, 8, 5, 2, 0, tzinfo=UTC)  # 09:00 in Hanoi, inside round 1


def sqlite_only(engine: AsyncEngine) -> None:
    if not is_sqlite(engine):
        pytest.skip("SQLite only")


async def add_person(
    uows: SqlUnitOfWorkFactory,
    telegram_id: int,
    phone: str,
    *,
    unit_id: int | None = None,
    consent_at: datetime = T0,
) -> Person:
    async with uows() as uow:
        person = await uow.persons.add(
            account=Account.telegram(telegram_id),
            full_name="Nguyễn Văn An",
            birth_date=date(1990, 3, 25),
            phone=phone,
            group=Group.CIVIL_SERVANT if unit_id else Group.CITIZEN,
            unit_id=unit_id,
            position=Position.STAFF if unit_id else None,
            ward_id=None,
            consent_at=consent_at,
            registered_at=consent_at,
        )
        await uow.commit()
    return person


async def add_questions(uows: SqlUnitOfWorkFactory, count: int) -> list[int]:
    rows = [
        QuestionRow("Chủ đề", f"Câu hỏi số {i}?", (f"A{i}", f"B{i}", f"C{i}"), i % 3)
        for i in range(count)
    ]
    async with uows() as uow:
        await uow.questions.upsert(rows)
        catalog = await uow.questions.catalog()
        await uow.commit()
    return [q.id for q in catalog]


async def add_attempt(
    uows: SqlUnitOfWorkFactory,
    person_id: int,
    question_ids: Sequence[int],
    *,
    number: int = 1,
    started_at: datetime = T0,
    minutes: int = 20,
) -> int:
    items = [AttemptItem(i, qid, (0, 1, 2)) for i, qid in enumerate(question_ids)]
    async with uows() as uow:
        attempt = await uow.attempts.create(
            person_id=person_id,
            round=1,
            number=number,
            started_at=started_at,
            deadline_at=started_at + timedelta(minutes=minutes),
            items=items,
        )
        await uow.commit()
    return attempt.id


@pytest.fixture
def uows(engine: AsyncEngine) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(engine)


@pytest.fixture
async def attempt_id(uows: SqlUnitOfWorkFactory) -> int:
    """One person with one in-progress attempt of three questions (deadline T0 + 20 min)."""
    person = await add_person(uows, 1001, "0912000001")
    return await add_attempt(uows, person.id, await add_questions(uows, 3))


# ------------------------------------------------------------------ migrations


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, m.Base.metadata))


def _tables_and_version(connection: Connection) -> tuple[set[str], list[str]]:
    tables = set(inspect(connection).get_table_names())
    versions = [r[0] for r in connection.execute(text("SELECT version_num FROM alembic_version"))]
    return tables, versions


async def test_migrate_twice_is_idempotent_and_matches_the_models(engine: AsyncEngine) -> None:
    await migrate(engine)  # the fixture already migrated once
    await migrate(engine)
    async with engine.connect() as connection:
        diff = await connection.run_sync(_schema_diff)
        tables, versions = await connection.run_sync(_tables_and_version)
    assert diff == []
    assert tables == set(m.Base.metadata.tables) | {"alembic_version"}
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert versions == [head]


async def test_migrate_keeps_data(engine: AsyncEngine, uows: SqlUnitOfWorkFactory) -> None:
    await add_questions(uows, 2)
    await migrate(engine)
    async with uows(write=False) as uow:
        assert await uow.questions.count() == 2


# ------------------------------------------------------------------ SQLite settings and locks


async def test_sqlite_pragmas_are_in_effect(engine: AsyncEngine) -> None:
    sqlite_only(engine)
    async with engine.connect() as connection:
        values = {
            name: (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    assert values["journal_mode"] == "wal"
    assert values["synchronous"] == 1  # NORMAL
    assert values["foreign_keys"] == 1
    assert isinstance(values["busy_timeout"], int)
    assert values["busy_timeout"] > 0


async def test_foreign_key_violation_is_rejected(uows: SqlUnitOfWorkFactory) -> None:
    with pytest.raises(IntegrityError):
        await add_person(uows, 2001, "0912000002", unit_id=987654)
    async with uows(write=False) as uow:
        assert await uow.persons.by_account(Account.telegram(2001)) is None


async def test_concurrent_read_then_write_units_of_work_all_succeed(
    engine: AsyncEngine, uows: SqlUnitOfWorkFactory
) -> None:
    """Each unit of work reads, yields to the others, then writes: with BEGIN IMMEDIATE
    none of them meets "database is locked"."""
    seen: list[int] = []

    async def work(i: int) -> None:
        async with uows() as uow:
            seen.append(await uow.units.count())
            await asyncio.sleep(0.005)
            await uow.units.upsert([UnitRow(f"U{i}", f"Đơn vị {i}", UnitKind.DEPARTMENT, 5)])
            await uow.commit()

    await asyncio.gather(*(work(i) for i in range(8)))
    async with uows(write=False) as uow:
        assert await uow.units.count() == 8
    if is_sqlite(engine):
        # The write lock is taken up front, so the units of work ran one after the other.
        assert sorted(seen) == list(range(8))


async def test_deferred_begin_read_then_write_fails_with_database_locked(
    engine: AsyncEngine, uows: SqlUnitOfWorkFactory
) -> None:
    """The contrast: two read-only (deferred BEGIN) units of work that read, then write.
    The second writer's snapshot is stale, and SQLite refuses it at once, busy timeout or
    not: that is why writing units of work take BEGIN IMMEDIATE."""
    sqlite_only(engine)
    first, second = uows(write=False), uows(write=False)
    async with first, second:
        assert await first.units.count() == 0
        assert await second.units.count() == 0
        await first.units.upsert([UnitRow("A", "Một", UnitKind.WARD, 1)])
        await first.commit()
        with pytest.raises(OperationalError, match="database is locked"):
            await second.units.upsert([UnitRow("B", "Hai", UnitKind.WARD, 1)])
    async with uows(write=False) as uow:
        assert await uow.units.count() == 1


def test_raw_sqlite_deferred_versus_immediate(tmp_path: Path) -> None:
    """The same contrast on bare sqlite3 connections in WAL mode with a 5 s busy timeout."""
    path = tmp_path / "raw.db"

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(path, timeout=5, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        return connection

    a, b = connect(), connect()
    try:
        a.execute("CREATE TABLE t (x INTEGER)")
        # Deferred: both read, A writes and commits, B's write fails immediately.
        a.execute("BEGIN")
        b.execute("BEGIN")
        count_a = a.execute("SELECT count(*) FROM t").fetchone()[0]
        count_b = b.execute("SELECT count(*) FROM t").fetchone()[0]
        a.execute("INSERT INTO t VALUES (?)", (count_a,))
        a.execute("COMMIT")
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            b.execute("INSERT INTO t VALUES (?)", (count_b,))
        b.execute("ROLLBACK")

        # Immediate: B waits for A's lock, then reads A's row and writes after it.
        a.execute("BEGIN IMMEDIATE")
        a.execute("INSERT INTO t VALUES (1)")
        result: list[int] = []
        errors: list[BaseException] = []

        def other() -> None:
            c = connect()
            try:
                c.execute("BEGIN IMMEDIATE")
                result.append(c.execute("SELECT count(*) FROM t").fetchone()[0])
                c.execute("INSERT INTO t VALUES (2)")
                c.execute("COMMIT")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                c.close()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(0.1)
        assert thread.is_alive()  # blocked on the write lock
        a.execute("COMMIT")
        thread.join(5)
        assert not thread.is_alive()
        assert errors == []
        assert result == [2]
        assert a.execute("SELECT count(*) FROM t").fetchone()[0] == 3
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------------ attempts


async def test_record_answer_is_a_compare_and_set(
    uows: SqlUnitOfWorkFactory, attempt_id: int
) -> None:
    async with uows() as uow:
        assert await uow.attempts.record_answer(attempt_id, 0, 2, True, T0)
        assert not await uow.attempts.record_answer(attempt_id, 0, 1, False, T0)
        assert not await uow.attempts.record_answer(attempt_id, 99, 1, False, T0)
        await uow.commit()
    async with uows() as uow:  # a later transaction cannot overwrite it either
        assert not await uow.attempts.record_answer(attempt_id, 0, 0, False, T0)
        await uow.commit()
    async with uows(write=False) as uow:
        attempt = await uow.attempts.get(attempt_id)
    assert attempt is not None
    first = attempt.items[0]
    assert (first.choice, first.correct, first.answered_at) == (2, True, T0)
    assert attempt.items[1].choice is None
    assert attempt.current_position() == 1


async def test_create_returns_what_is_stored(uows: SqlUnitOfWorkFactory) -> None:
    person = await add_person(uows, 1003, "0912000003")
    questions = await add_questions(uows, 3)
    items = [AttemptItem(i, qid, (2, 0, 1)) for i, qid in enumerate(questions)]
    async with uows() as uow:
        created = await uow.attempts.create(
            person_id=person.id,
            round=1,
            number=1,
            started_at=T0,
            deadline_at=T0 + timedelta(minutes=20),
            items=items,
            chat_id=1003,
            message_id=42,
        )
        await uow.commit()
    async with uows(write=False) as uow:
        stored = await uow.attempts.get(created.id)
        assert await uow.attempts.in_progress(person.id, 1) == stored
        assert await uow.attempts.count_for(person.id, 1) == 1
    assert stored == created
    assert (stored.chat_id, stored.message_id) == (1003, 42)
    assert [item.order for item in stored.items] == [(2, 0, 1)] * 3


async def test_finish_happens_once(uows: SqlUnitOfWorkFactory, attempt_id: int) -> None:
    deadline = T0 + timedelta(minutes=20)
    async with uows() as uow:
        assert await uow.attempts.finish(attempt_id, AttemptStatus.EXPIRED, deadline, 1, 1200.0)
        assert not await uow.attempts.finish(attempt_id, AttemptStatus.SUBMITTED, T0, 3, 5.0)
        await uow.commit()
    async with uows() as uow:
        assert not await uow.attempts.finish(attempt_id, AttemptStatus.SUBMITTED, T0, 3, 5.0)
        attempt = await uow.attempts.get(attempt_id)
        results = await uow.attempts.results(1)
    assert attempt is not None
    assert attempt.status is AttemptStatus.EXPIRED
    assert (attempt.finished_at, attempt.correct_count) == (deadline, 1)
    assert attempt.duration_seconds == pytest.approx(1200.0)
    assert [(r.attempt_id, r.correct, r.total) for r in results] == [(attempt_id, 1, 3)]


async def test_mark_warned_only_raises_the_level(
    uows: SqlUnitOfWorkFactory, attempt_id: int
) -> None:
    async with uows() as uow:
        assert await uow.attempts.mark_warned(attempt_id, 1)
        assert not await uow.attempts.mark_warned(attempt_id, 1)
        assert await uow.attempts.mark_warned(attempt_id, 2)
        assert not await uow.attempts.mark_warned(attempt_id, 1)
        assert not await uow.attempts.mark_warned(attempt_id, 2)
        await uow.commit()
    async with uows(write=False) as uow:
        attempt = await uow.attempts.get(attempt_id)
    assert attempt is not None
    assert attempt.warned == 2


async def test_deadline_queries_around_the_boundary(
    uows: SqlUnitOfWorkFactory, attempt_id: int
) -> None:
    deadline = T0 + timedelta(minutes=20)
    tick = timedelta(microseconds=1)
    minute = timedelta(minutes=1)
    async with uows(write=False) as uow:
        attempts = uow.attempts
        assert await attempts.open_deadlines() == [(attempt_id, deadline)]
        # Expired strictly after the deadline (as Attempt.expired_at says).
        assert await attempts.expired_ids(deadline - tick, 10) == []
        assert await attempts.expired_ids(deadline, 10) == []
        assert await attempts.expired_ids(deadline + tick, 10) == [attempt_id]
        assert await attempts.expired_ids(deadline + tick, 0) == []
        # Warnings: deadline within (now, now + before].
        assert await attempts.warn_candidates(deadline - minute - tick, 60, 1) == []
        assert await attempts.warn_candidates(deadline - minute, 60, 1) == [attempt_id]
        assert await attempts.warn_candidates(deadline - tick, 60, 1) == [attempt_id]
        assert await attempts.warn_candidates(deadline, 60, 1) == []
        assert await attempts.warn_candidates(deadline - 5 * minute, 300, 0) == [attempt_id]
    # Given warning levels are not offered again.
    async with uows() as uow:
        assert await uow.attempts.mark_warned(attempt_id, 1)  # the 5-minute warning
        await uow.commit()
    async with uows(write=False) as uow:
        assert await uow.attempts.warn_candidates(deadline - 4 * minute, 300, 0) == []
        assert await uow.attempts.warn_candidates(deadline - minute, 60, 1) == [attempt_id]
    async with uows() as uow:
        assert await uow.attempts.mark_warned(attempt_id, 2)  # the 1-minute warning
        await uow.commit()
    async with uows(write=False) as uow:
        assert await uow.attempts.warn_candidates(deadline - tick, 60, 1) == []
    # A finished attempt has no deadline any more.
    async with uows() as uow:
        assert await uow.attempts.finish(attempt_id, AttemptStatus.SUBMITTED, T0, 0, 1.0)
        await uow.commit()
    async with uows(write=False) as uow:
        assert await uow.attempts.open_deadlines() == []
        assert await uow.attempts.expired_ids(deadline + timedelta(days=1), 10) == []
        assert await uow.attempts.warn_candidates(deadline - tick, 60, 0) == []


async def test_expired_ids_oldest_deadline_first(uows: SqlUnitOfWorkFactory) -> None:
    questions = await add_questions(uows, 2)
    late = await add_person(uows, 3001, "0912000031")
    early = await add_person(uows, 3002, "0912000032")
    late_id = await add_attempt(uows, late.id, questions, started_at=T0 + timedelta(minutes=5))
    early_id = await add_attempt(uows, early.id, questions, started_at=T0)
    async with uows(write=False) as uow:
        now = T0 + timedelta(hours=1)
        assert await uow.attempts.expired_ids(now, 10) == [early_id, late_id]
        assert await uow.attempts.expired_ids(now, 1) == [early_id]


async def test_attempt_number_is_unique_per_person_and_round(
    uows: SqlUnitOfWorkFactory, attempt_id: int
) -> None:
    async with uows(write=False) as uow:
        attempt = await uow.attempts.get(attempt_id)
    assert attempt is not None
    with pytest.raises(Conflict) as caught:
        await add_attempt(uows, attempt.person_id, [attempt.items[0].question_id], number=1)
    assert isinstance(caught.value.__cause__, IntegrityError)


# ------------------------------------------------------------------ outbox


async def test_outbox_add_is_idempotent_by_key(uows: SqlUnitOfWorkFactory) -> None:
    person = await add_person(uows, 4001, "0912000041")
    async with uows() as uow:
        assert await uow.outbox.add("result:1", person.id, "attempt_result", {"n": 1}, T0)
        assert not await uow.outbox.add("result:1", person.id, "attempt_result", {"n": 2}, T0)
        await uow.commit()
    async with uows() as uow:
        assert not await uow.outbox.add("result:1", None, "other", {"n": 3}, T0)
        assert await uow.outbox.add("result:2", None, "reminder", {"đ": "Đống Đa"}, T0)
        await uow.commit()
    async with uows() as uow:
        claimed = await uow.outbox.claim(T0, 60, 10, "me")
        await uow.commit()
    assert [(n.key, n.person_id, n.kind, n.payload) for n in claimed] == [
        ("result:1", person.id, "attempt_result", {"n": 1}),
        ("result:2", None, "reminder", {"đ": "Đống Đa"}),
    ]


async def _claim(
    uows: SqlUnitOfWorkFactory, now: datetime, owner: str, *, limit: int = 100
) -> list[str]:
    """One claim in its own unit of work, with a 60-second lease."""
    async with uows() as uow:
        claimed = await uow.outbox.claim(now, 60.0, limit, owner)
        await uow.commit()
    return [n.key for n in claimed]


async def test_outbox_claim_goes_to_one_owner_only(
    engine: AsyncEngine, uows: SqlUnitOfWorkFactory
) -> None:
    keys = [f"k{i:02}" for i in range(20)]
    async with uows() as uow:
        for key in keys:
            assert await uow.outbox.add(key, None, "reminder", {}, T0)
        await uow.commit()
    owners = [f"worker-{i}" for i in range(5)]
    got: dict[str, list[str]] = {owner: [] for owner in owners}
    for round_ in range(5):  # several rounds of five concurrent claimers
        results = await asyncio.gather(*(_claim(uows, T0, o, limit=8) for o in owners))
        for owner, claimed in zip(owners, results, strict=True):
            got[owner] += claimed
        if round_ == 0 and is_sqlite(engine):
            # Serialised by BEGIN IMMEDIATE: the first round shares out every row.
            assert sorted(k for r in results for k in r) == keys
    everything = [key for claimed in got.values() for key in claimed]
    assert len(everything) == len(set(everything))  # nobody got a row twice
    assert sorted(everything) == keys
    # Claimed rows are not offered again while the lease runs.
    assert await _claim(uows, T0 + timedelta(seconds=59), "late") == []
    async with uows(write=False) as uow:
        assert uow.session is not None
        stmt = select(m.OutboxRow.key, m.OutboxRow.claimed_by, m.OutboxRow.tries)
        rows = {key: (owner, tries) for key, owner, tries in await uow.session.execute(stmt)}
    for owner, claimed in got.items():
        assert all(rows[key] == (owner, 1) for key in claimed)


async def test_outbox_claim_by_kind(uows: SqlUnitOfWorkFactory) -> None:
    async with uows() as uow:
        await uow.outbox.add("result", None, "attempt_result", {}, T0)
        await uow.outbox.add("warning", None, "attempt_warning", {}, T0)
        await uow.commit()
    async with uows() as uow:
        warnings = await uow.outbox.claim(T0, 30, 10, "me", kinds=["attempt_warning"])
        rest = await uow.outbox.claim(T0, 30, 10, "me")
        await uow.commit()
    assert [n.key for n in warnings] == ["warning"]
    assert [n.key for n in rest] == ["result"]


async def test_outbox_claim_lapses_and_sent_rows_stay_sent(uows: SqlUnitOfWorkFactory) -> None:
    async with uows() as uow:
        await uow.outbox.add("a", None, "reminder", {}, T0)
        await uow.outbox.add("b", None, "reminder", {}, T0)
        await uow.commit()
    async with uows() as uow:
        claimed = await uow.outbox.claim(T0, 30, 10, "first")
        await uow.commit()
    ids = {n.key: n.id for n in claimed}
    assert set(ids) == {"a", "b"}
    assert [n.tries for n in claimed] == [1, 1]  # this claim is the first try
    async with uows() as uow:
        await uow.outbox.mark_sent(ids["a"], T0 + timedelta(seconds=1))
        await uow.commit()
    lease_end = T0 + timedelta(seconds=30)
    assert await _claim(uows, lease_end, "second") == []  # the lease runs to its end
    # A sender that died mid-way: its claim runs out and another takes the row.
    assert await _claim(uows, lease_end + timedelta(microseconds=1), "second") == ["b"]
    assert await _claim(uows, T0 + timedelta(hours=1), "third") == ["b"]
    async with uows() as uow:
        await uow.outbox.mark_sent(ids["b"], T0 + timedelta(hours=1))
        await uow.commit()
    assert await _claim(uows, T0 + timedelta(days=1), "fourth") == []
    async with uows(write=False) as uow:
        assert uow.session is not None
        rows = {r.key: r for r in await uow.session.scalars(select(m.OutboxRow))}
        assert rows["a"].sent_at == T0 + timedelta(seconds=1)
        assert (rows["a"].tries, rows["a"].outcome) == (1, "sent")
        assert (rows["b"].tries, rows["b"].claimed_by, rows["b"].outcome) == (3, "third", "sent")


async def test_outbox_back_off_validity_and_how_rows_end(uows: SqlUnitOfWorkFactory) -> None:
    async with uows() as uow:
        await uow.outbox.add("retry", None, "r", {}, T0, expires_at=T0 + timedelta(hours=24))
        await uow.outbox.add("blocked", None, "r", {}, T0)
        await uow.outbox.add("later", None, "r", {}, T0, not_before=T0 + timedelta(minutes=1))
        await uow.outbox.add("stale", None, "r", {}, T0, expires_at=T0 + timedelta(seconds=5))
        await uow.commit()
    async with uows() as uow:
        claimed = {n.key: n for n in await uow.outbox.claim(T0, 60, 10, "me")}
        assert set(claimed) == {"retry", "blocked", "stale"}  # "later" waits for its time
        await uow.outbox.retry_at(
            claimed["retry"].id, "Timed out " * 100, T0 + timedelta(seconds=2)
        )
        await uow.outbox.end(claimed["blocked"].id, T0, "blocked", "Forbidden: bot was blocked")
        await uow.commit()
    # The retry is offered again at its time, though its 60 s claim has not run out.
    assert await _claim(uows, T0 + timedelta(seconds=1), "me") == []
    assert await _claim(uows, T0 + timedelta(seconds=2), "me") == ["retry"]
    # "stale" was claimed and never ended: once its claim and its validity are over, it ends.
    async with uows() as uow:
        assert await uow.outbox.expire(T0 + timedelta(seconds=61)) == 1
        await uow.commit()
    assert await _claim(uows, T0 + timedelta(seconds=61), "me") == ["later"]
    # Shown elsewhere: a pending, unclaimed row can be ended by its key, a claimed one not.
    async with uows() as uow:
        assert await uow.outbox.add("shown", None, "r", {}, T0, not_before=T0 + timedelta(days=9))
        assert await uow.outbox.end_pending("shown", T0 + timedelta(minutes=2), "inline")
        assert not await uow.outbox.end_pending("shown", T0 + timedelta(minutes=2), "inline")
        assert not await uow.outbox.end_pending("later", T0 + timedelta(minutes=2), "inline")
        await uow.commit()
    async with uows(write=False) as uow:
        assert uow.session is not None
        rows = {r.key: r for r in await uow.session.scalars(select(m.OutboxRow))}
        assert rows["retry"].sent_at is None and rows["retry"].tries == 2
        assert rows["retry"].last_error is not None and len(rows["retry"].last_error) == 500
        assert (rows["blocked"].outcome, rows["blocked"].last_error) == (
            "blocked",
            "Forbidden: bot was blocked",
        )
        assert (rows["stale"].outcome, rows["stale"].sent_at) == (
            "expired",
            T0 + timedelta(seconds=61),
        )
        assert rows["shown"].outcome == "inline"
        assert rows["later"].sent_at is None  # claimed, not ended


# ------------------------------------------------------------------ units and questions


async def test_units_page_and_accent_insensitive_search(uows: SqlUnitOfWorkFactory) -> None:
    wards = [
        UnitRow("P-CATLINH", "UBND phường Cát Linh", UnitKind.WARD, 24),
        UnitRow("P-VANMIEU", "UBND phường Văn Miếu", UnitKind.WARD, 20),
        UnitRow("P-OCHODUA", "UBND phường Ô Chợ Dừa", UnitKind.WARD, 30),
    ]
    departments = [
        UnitRow(f"PB-{i:02}", f"Phòng số {i:02} quận Đống Đa", UnitKind.DEPARTMENT, 10)
        for i in range(10)
    ]
    departments.append(UnitRow("PB-50%", "Phòng 50%_test", UnitKind.DEPARTMENT, 3))
    schools = [UnitRow("GD-CATLINH", "Trường THCS Cát Linh", UnitKind.EDUCATION, 55)]
    async with uows() as uow:
        summary = await uow.units.upsert([*wards, *departments, *schools])
        await uow.commit()
    assert (summary.created, summary.updated) == (15, 0)
    async with uows(write=False) as uow:
        units = uow.units
        found = await units.page(UnitKind.WARD, 0, 8, "cat linh")
        assert [u.name for u in found.units] == ["UBND phường Cát Linh"]  # not the school
        assert found.query == "cat linh"
        found = await units.page(UnitKind.EDUCATION, 0, 8, "CÁT  LINH")
        assert [u.code for u in found.units] == ["GD-CATLINH"]
        found = await units.page(UnitKind.WARD, 0, 8, "o cho dua")
        assert [u.code for u in found.units] == ["P-OCHODUA"]
        found = await units.page(UnitKind.DEPARTMENT, 0, 8, "dong da")
        assert (found.pages, len(found.units)) == (2, 8)
        rest = await units.page(UnitKind.DEPARTMENT, 1, 8, "dong da")
        assert len(rest.units) == 2
        names = [u.name for u in found.units + rest.units]
        assert names == sorted(names) and len(set(names)) == 10
        # LIKE wildcards in the query are literal.
        found = await units.page(UnitKind.DEPARTMENT, 0, 8, "50%_")
        assert [u.code for u in found.units] == ["PB-50%"]
        assert (await units.page(UnitKind.DEPARTMENT, 0, 8, "%")).units[0].code == "PB-50%"
        # No match: one empty page. Out-of-range pages are clamped.
        empty = await units.page(UnitKind.WARD, 3, 8, "khong co")
        assert (empty.units, empty.page, empty.pages) == ([], 0, 1)
        last = await units.page(UnitKind.DEPARTMENT, 99, 8, None)
        assert (last.page, last.pages, len(last.units)) == (1, 2, 3)
        first = await units.page(UnitKind.DEPARTMENT, -5, 8, None)
        assert first.page == 0
        all_wards = await units.page(UnitKind.WARD, 0, 8, None)
        assert [u.code for u in all_wards.units] == ["P-CATLINH", "P-OCHODUA", "P-VANMIEU"]


async def test_units_upsert_by_code(uows: SqlUnitOfWorkFactory) -> None:
    async with uows() as uow:
        await uow.units.upsert([UnitRow("P-X", "Phường Cũ", UnitKind.WARD, 5)])
        await uow.commit()
    async with uows() as uow:
        summary = await uow.units.upsert([UnitRow("P-X", "Phường Đống Đa", UnitKind.WARD, 9)])
        await uow.commit()
    assert (summary.created, summary.updated) == (0, 1)
    async with uows(write=False) as uow:
        assert await uow.units.count() == 1
        page = await uow.units.page(UnitKind.WARD, 0, 8, "dong da")
    assert [(u.name, u.staff_count) for u in page.units] == [("Phường Đống Đa", 9)]


async def test_question_upsert_matches_text_whatever_the_case_and_spacing(
    uows: SqlUnitOfWorkFactory,
) -> None:
    text_nfc = "Cải cách hành chính là gì?"
    async with uows() as uow:
        summary = await uow.questions.upsert(
            [
                QuestionRow("Chủ đề 1", text_nfc, ("Một", "Hai", "Ba"), 0),
                QuestionRow("Chủ đề 1", "Câu khác?", ("x", "y", "z"), 1),
            ]
        )
        await uow.commit()
    assert (summary.created, summary.updated) == (2, 0)
    variants = [
        "  CẢI CÁCH   HÀNH\tCHÍNH là gì?  ",
        unicodedata.normalize("NFD", "cải cách hành chính LÀ GÌ?"),
    ]
    for answer, variant in enumerate(variants, start=1):
        async with uows() as uow:
            summary = await uow.questions.upsert(
                [QuestionRow("Chủ đề 2", variant, ("Bốn", "Năm", "Sáu"), answer)]
            )
            await uow.commit()
        assert (summary.created, summary.updated) == (0, 1)
    async with uows(write=False) as uow:
        assert await uow.questions.count() == 2
        catalog = await uow.questions.catalog()
    updated = next(q for q in catalog if q.text != "Câu khác?")
    assert updated.topic == "Chủ đề 2"
    assert updated.options == ("Bốn", "Năm", "Sáu")
    assert updated.answer == 2
    assert updated.text == variants[1]


async def test_question_upsert_with_replace_withdraws_the_rest(uows: SqlUnitOfWorkFactory) -> None:
    await add_questions(uows, 3)
    keep = [QuestionRow("Chủ đề", f"Câu hỏi số {i}?", ("A", "B", "C"), 0) for i in (0, 2)]
    async with uows() as uow:
        summary = await uow.questions.upsert(keep, replace=True)
        await uow.commit()
    assert (summary.created, summary.updated, summary.withdrawn) == (0, 2, 1)
    async with uows(write=False) as uow:
        active = [q.text for q in await uow.questions.catalog()]
        every = [q.text for q in await uow.questions.catalog(include_inactive=True)]
    assert active == ["Câu hỏi số 0?", "Câu hỏi số 2?"]
    assert every == ["Câu hỏi số 0?", "Câu hỏi số 1?", "Câu hỏi số 2?"]


async def test_person_phone_and_telegram_id_are_unique(uows: SqlUnitOfWorkFactory) -> None:
    await add_person(uows, 5001, "0912000051")
    with pytest.raises(IntegrityError):
        await add_person(uows, 5002, "0912000051")  # same phone
    with pytest.raises(IntegrityError):
        await add_person(uows, 5001, "0912000052")  # same Telegram account
    await add_person(uows, 5003, "0912000053")
    async with uows(write=False) as uow:
        assert uow.session is not None
        count = await uow.session.scalar(select(func.count()).select_from(m.PersonRow))
    assert count == 2


# ------------------------------------------------------------------ times


async def test_times_round_trip_as_aware_utc(
    engine: AsyncEngine, uows: SqlUnitOfWorkFactory
) -> None:
    local = datetime(2024, 8, 5, 23, 59, 58, 123456, tzinfo=LOCAL_TZ)  # 16:59:58Z
    person = await add_person(uows, 6001, "0912000061", consent_at=local)
    async with uows(write=False) as uow:
        loaded = await uow.persons.get(person.id)
        assert uow.session is not None
        raw = await uow.session.scalar(
            text("SELECT consent_at FROM persons WHERE id = :id"), {"id": person.id}
        )
    assert loaded is not None
    assert loaded.consent_at == local
    assert loaded.consent_at.utcoffset() == timedelta(0)
    assert loaded.consent_at.tzinfo is UTC
    assert loaded.consent_at.isoformat() == "2024-08-05T16:59:58.123456+00:00"
    assert loaded.birth_date == date(1990, 3, 25)
    assert str(raw).startswith("2024-08-05 16:59:58.123456")  # naive UTC in the database
    # Times compare as instants in queries too (deadline in local time, query in UTC).
    questions = await add_questions(uows, 1)
    started = datetime(2024, 8, 5, 9, 0, tzinfo=LOCAL_TZ)
    attempt_id = await add_attempt(uows, person.id, questions, started_at=started)
    async with uows(write=False) as uow:
        deadlines = await uow.attempts.open_deadlines()
        assert deadlines == [(attempt_id, datetime(2024, 8, 5, 2, 20, tzinfo=UTC))]
        assert deadlines[0][1].tzinfo is UTC
        assert await uow.attempts.expired_ids(datetime(2024, 8, 5, 2, 20, 1, tzinfo=UTC), 5) == [
            attempt_id
        ]


async def test_naive_datetimes_are_refused(uows: SqlUnitOfWorkFactory) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        await add_person(uows, 7001, "0912000071", consent_at=datetime(2024, 8, 5, 9, 0))


# ------------------------------------------------------------------ concurrency on an attempt


async def start_exam(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock
) -> tuple[ContestService, SqlUnitOfWorkFactory, Account, int]:
    uows = SqlUnitOfWorkFactory(seeded)
    async with uows(write=False) as uow:
        ward = (await uow.units.page(UnitKind.WARD, 0, 1, None)).units[0]
    telegram_id = Account.telegram(8001)
    await add_person(uows, 8001, "0912000081", unit_id=ward.id)
    service = ContestService(uows, clock, rules)
    card = await service.exams.start_attempt(telegram_id)
    assert card.position == 0
    return service, uows, telegram_id, card.attempt_id


async def test_concurrent_answers_to_one_question_record_one(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock
) -> None:
    service, uows, telegram_id, attempt_id = await start_exam(seeded, rules, clock)
    clock.advance(seconds=10)

    async def press(choice: int) -> Any:
        try:
            return await service.exams.answer(telegram_id, attempt_id, 0, choice)
        except ContestError as exc:
            return exc

    outcomes = await asyncio.gather(*(press(i % 3) for i in range(10)))
    errors = [o for o in outcomes if isinstance(o, ContestError)]
    successes = [o for o in outcomes if not isinstance(o, ContestError)]
    assert len(successes) == 1
    assert [e.code for e in errors] == ["stale_question"] * 9
    assert successes[0].next_card is not None
    assert successes[0].next_card.position == 1
    async with uows(write=False) as uow:
        attempt = await uow.attempts.get(attempt_id)
    assert attempt is not None
    assert sum(item.answered for item in attempt.items) == 1
    assert attempt.items[0].choice is not None
    assert attempt.status is AttemptStatus.IN_PROGRESS


async def test_concurrent_closes_close_once(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock
) -> None:
    service, uows, _, attempt_id = await start_exam(seeded, rules, clock)
    assert await service.exams.close_if_expired(attempt_id) is False  # not yet due
    clock.advance(rules.round1.duration + timedelta(seconds=1))
    closed = await asyncio.gather(*(service.exams.close_if_expired(attempt_id) for _ in range(5)))
    assert sorted(closed) == [False] * 4 + [True]
    assert await service.exams.close_if_expired(attempt_id) is False
    async with uows(write=False) as uow:
        attempt = await uow.attempts.get(attempt_id)
        assert uow.session is not None
        keys = list(await uow.session.scalars(select(m.OutboxRow.key)))
    assert attempt is not None
    assert attempt.status is AttemptStatus.EXPIRED
    assert attempt.finished_at == attempt.deadline_at
    assert keys == [f"{RESULT_NOTIFICATION}:{attempt_id}"]


async def test_unit_of_work_rolls_back_without_commit(uows: SqlUnitOfWorkFactory) -> None:
    async with uows() as uow:
        await uow.units.upsert([UnitRow("P-1", "Phường Một", UnitKind.WARD, 5)])
        assert await uow.units.count() == 1
    async with uows(write=False) as uow:
        assert await uow.units.count() == 0


# ------------------------------------------------------------------ ranking


async def test_best_results_picks_each_persons_counting_attempt_in_sql(
    uows: SqlUnitOfWorkFactory,
) -> None:
    questions = await add_questions(uows, 4)
    # (correct, seconds) of attempts 1 and 2 per person; the expected pick by the plan's rule.
    cases = [
        ((3, 600.0), (2, 100.0)),  # more correct wins over a faster attempt
        ((2, 500.0), (2, 300.0)),  # equal correct: the shorter time
        ((1, 400.0), (1, 400.0)),  # fully equal: the earlier submission (attempt 1)
        ((0, 1200.0), None),  # one attempt only
    ]
    for index, (first, second) in enumerate(cases):
        person = await add_person(uows, 7000 + index, f"09130000{index:02d}")
        for number, outcome in enumerate((first, second), start=1):
            if outcome is None:
                continue
            attempt = await add_attempt(
                uows, person.id, questions, number=number, started_at=T0 + timedelta(hours=number)
            )
            correct, seconds = outcome
            async with uows() as uow:
                assert await uow.attempts.finish(
                    attempt,
                    AttemptStatus.SUBMITTED,
                    T0 + timedelta(hours=number, seconds=seconds),
                    correct,
                    seconds,
                )
                await uow.commit()
    # An attempt still in progress never counts.
    late = await add_person(uows, 7999, "0913999999")
    await add_attempt(uows, late.id, questions)

    async with uows(write=False) as uow:
        everything = await uow.attempts.results(1)
        best = await uow.attempts.best_results(1)
    by_person = {r.person_id: r for r in best}
    assert len(best) == len(by_person) == 4
    assert by_person == best_per_person(everything)
    picked = sorted((r.correct, r.duration_seconds, r.number) for r in best)
    assert picked == [(0, 1200.0, 1), (1, 400.0, 1), (2, 300.0, 2), (3, 600.0, 1)]
    # The flags kept by each finish are what a recount of everything gives.
    flags = await _counting_flags(uows)
    async with uows() as uow:
        assert uow.session is not None
        await uow.session.execute(text(RECOUNT_ALL))
        await uow.commit()
    assert await _counting_flags(uows) == flags
    assert sum(flags.values()) == 4


async def _counting_flags(uows: SqlUnitOfWorkFactory) -> dict[int, bool]:
    async with uows(write=False) as uow:
        assert uow.session is not None
        rows = await uow.session.execute(select(m.AttemptRow.id, m.AttemptRow.counting))
        return {attempt_id: bool(counting) for attempt_id, counting in rows}


async def test_upgrading_flags_the_counting_attempts_already_finished(
    database_url: str, tmp_path: Path
) -> None:
    """A database of the first revision, with results in it, upgraded: ranking reads the
    same counting attempts as before."""
    from tests.conftest import pg_engine

    engine = pg_engine(database_url)
    try:
        async with write_transaction(engine) as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0001"))
            await conn.execute(
                text(
                    "INSERT INTO persons (telegram_id, full_name, birth_date, phone, "
                    '"group", consent_at, registered_at) VALUES '
                    "(1, 'An', '1990-01-01', '0912000001', 'citizen', :t, :t), "
                    "(2, 'Bình', '1990-01-01', '0912000002', 'citizen', :t, :t)"
                ),
                {"t": T0.replace(tzinfo=None)},
            )
            rows = [  # person, number, status, correct, seconds
                (1, 1, "submitted", 15, 700.0),
                (1, 2, "submitted", 15, 650.0),  # counts: same score, faster
                (2, 1, "expired", 9, 1200.0),  # counts: the only finished one
                (2, 2, "in_progress", 0, None),
            ]
            for person, number, status, correct, seconds in rows:
                await conn.execute(
                    text(
                        "INSERT INTO attempts (person_id, round, number, question_count, "
                        "status, started_at, deadline_at, finished_at, correct_count, "
                        "duration_seconds, warned) VALUES (:p, 1, :n, 20, :s, :t, :t, :f, "
                        ":c, :d, 0)"
                    ),
                    {
                        "p": person,
                        "n": number,
                        "s": status,
                        "t": T0.replace(tzinfo=None),
                        "f": None if seconds is None else T0.replace(tzinfo=None),
                        "c": correct,
                        "d": seconds,
                    },
                )
        await migrate(engine)
        async with SqlUnitOfWorkFactory(engine)(write=False) as uow:
            best = await uow.attempts.best_results(1)
        assert sorted((r.person_id, r.number) for r in best) == [(1, 2), (2, 1)]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("attempts", [2, 3])
async def test_two_processes_start_over_an_unclosed_expired_attempt(
    seeded: AsyncEngine, database_url: str, rules: ContestRules, clock: ManualClock, attempts: int
) -> None:
    """Attempt 1 ran out unnoticed; two processes handle "Bắt đầu" at once. Both must show
    the same new attempt: no second open attempt, no wrong "no attempts left"."""
    from dataclasses import replace

    from storage.db import create_engine

    rules = replace(rules, round1=replace(rules.round1, attempts=attempts))
    uows = SqlUnitOfWorkFactory(seeded)
    async with uows(write=False) as uow:
        ward = (await uow.units.page(UnitKind.WARD, 0, 1, None)).units[0]
    await add_person(uows, 8101, "0912000181", unit_id=ward.id)
    await ContestService(uows, clock, rules).exams.start_attempt(Account.telegram(8101))
    clock.advance(rules.round1.duration + timedelta(seconds=5))
    engines = [create_engine(database_url), create_engine(database_url)]
    try:
        services = [ContestService(SqlUnitOfWorkFactory(e), clock, rules) for e in engines]
        for service in services:  # open the pools and fill the bank caches first
            await service.results.ranking(1)
        cards = await asyncio.gather(
            *(s.exams.start_attempt(Account.telegram(8101)) for s in services)
        )
    finally:
        for engine in engines:
            await engine.dispose()
    assert cards[0].attempt_id == cards[1].attempt_id
    async with uows(write=False) as uow:
        assert uow.session is not None
        rows = (
            await uow.session.execute(
                select(m.AttemptRow.number, m.AttemptRow.status).order_by(m.AttemptRow.id)
            )
        ).all()
    assert [tuple(r) for r in rows] == [(1, "expired"), (2, "in_progress")]


async def test_a_result_without_a_duration_counts_as_zero_seconds_everywhere(
    uows: SqlUnitOfWorkFactory,
) -> None:
    """Rows written without the bot (past results) may lack a duration: SQL's NULL order
    differs per database, so the flags must order it as contest.scoring does (0 s)."""
    person = await add_person(uows, 1004, "0912000004")
    questions = await add_questions(uows, 3)
    first = await add_attempt(uows, person.id, questions, number=1)
    second = await add_attempt(uows, person.id, questions, number=2)
    finished = {first: (None, T0 + timedelta(minutes=5)), second: (10.0, T0 + timedelta(minutes=1))}
    async with uows() as uow:
        assert uow.session is not None
        for attempt_id, (seconds, at) in finished.items():
            await uow.session.execute(
                text(
                    "UPDATE attempts SET status = 'submitted', correct_count = 2, "
                    "finished_at = :at, duration_seconds = :seconds WHERE id = :id"
                ),
                {"id": attempt_id, "at": at.replace(tzinfo=None), "seconds": seconds},
            )
        await uow.session.execute(text(RECOUNT_ALL))
        await uow.commit()
    async with uows(write=False) as uow:
        flagged = [r.attempt_id for r in await uow.attempts.best_results(1)]
        best = best_result(await uow.attempts.results_for(person.id, 1))
    assert best is not None
    assert flagged == [best.attempt_id] == [first]


async def test_upgrading_to_accounts_keeps_people_their_drafts_and_attempts(
    database_url: str,
) -> None:
    """A database of revision 0003 (persons keyed by their Telegram id) upgraded: each
    person gets a Telegram account, drafts are kept under theirs, attempts stay theirs."""
    from tests.conftest import pg_engine

    engine = pg_engine(database_url)
    naive = T0.replace(tzinfo=None)
    try:
        async with write_transaction(engine, foreign_keys=False) as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0003"))
            await conn.execute(
                text(
                    "INSERT INTO persons (telegram_id, full_name, birth_date, phone, "
                    '"group", consent_at, registered_at) VALUES '
                    "(7001, 'An', '1990-01-01', '0912000001', 'citizen', :t, :t), "
                    "(7002, 'Bình', '1990-01-01', '0912000002', 'citizen', :t, :t)"
                ),
                {"t": naive},
            )
            await conn.execute(
                text(
                    "INSERT INTO registration_drafts (telegram_id, data, updated_at) "
                    'VALUES (7003, \'{"step": "name", "consent": true}\', :t)'
                ),
                {"t": naive},
            )
            await conn.execute(
                text(
                    "INSERT INTO attempts (person_id, round, number, question_count, status, "
                    "started_at, deadline_at, correct_count, warned) "
                    "VALUES (2, 1, 1, 20, 'in_progress', :t, :t, 0, 0)"
                ),
                {"t": naive},
            )
        await migrate(engine)
        uows = SqlUnitOfWorkFactory(engine)
        async with uows(write=False) as uow:
            an = await uow.persons.by_account(Account.telegram(7001))
            binh = await uow.persons.by_account(Account.telegram(7002))
            assert an is not None and an.full_name == "An" and not an.locked
            assert binh is not None and binh.id == 2
            assert await uow.accounts.of_person(2) == [Account.telegram(7002)]
            assert await uow.attempts.owned(1, Account.telegram(7002)) is not None
            assert await uow.attempts.owned(1, Account.telegram(7001)) is None
            draft = await uow.drafts.get(Account.telegram(7003))
            assert draft is not None and draft.step.value == "name" and draft.consent
        async with engine.connect() as conn:  # foreign keys are on again after migrating
            if is_sqlite(engine):
                assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    finally:
        await engine.dispose()
