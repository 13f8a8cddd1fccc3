"""The answer path on the database driver (``storage.presses``), on SQLite and PostgreSQL:
it must read and write exactly what the SQLAlchemy repositories do, compare-and-set like
them, and roll back what it does not commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contest.clock import ManualClock
from contest.errors import ContestError
from contest.model import Account, AttemptStatus
from contest.rules import ContestRules
from contest.services import ContestService
from storage.presses import DriverPressStores, numbered
from storage.uow import SqlUnitOfWorkFactory
from tests.test_storage import add_attempt, add_person, add_questions, start_exam

# Microseconds on purpose: both paths must store and read the same instant.
T1 = datetime(2024, 8, 5, 2, 3, 4, 567891, tzinfo=UTC)


@pytest.fixture
def uows(engine: AsyncEngine) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(engine)


@pytest.fixture
async def presses(engine: AsyncEngine) -> AsyncIterator[DriverPressStores]:
    assert DriverPressStores.supports(engine)
    stores = DriverPressStores(engine)
    try:
        yield stores
    finally:
        stores.close()


@pytest.fixture
async def attempt_id(uows: SqlUnitOfWorkFactory) -> int:
    person = await add_person(uows, 1001, "0912000001")
    return await add_attempt(uows, person.id, await add_questions(uows, 3))


def test_named_parameters_become_numbered_ones() -> None:
    sql, names = numbered("SELECT :b, :a FROM t WHERE x = :b AND y = :c_d")
    assert sql == "SELECT $1, $2 FROM t WHERE x = $1 AND y = $3"
    assert names == ("b", "a", "c_d")


async def test_only_file_sqlite_and_asyncpg_are_supported(tmp_path: Any) -> None:
    memory = create_async_engine("sqlite+aiosqlite://")
    file = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    pg = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1/test")
    try:
        assert not DriverPressStores.supports(memory)
        assert DriverPressStores.supports(file)
        assert DriverPressStores.supports(pg)
    finally:
        for engine in (memory, file, pg):
            await engine.dispose()


async def test_reads_what_the_repositories_read(
    uows: SqlUnitOfWorkFactory, presses: DriverPressStores, attempt_id: int
) -> None:
    async with uows() as uow:
        assert await uow.attempts.record_answer(attempt_id, 0, 1, True, T1)
        await uow.attempts.set_message(attempt_id, 1001, 77)
        await uow.commit()
    async with uows(write=False) as uow:
        expected = await uow.attempts.owned(attempt_id, Account.telegram(1001))
        key = await uow.questions.answer_of(expected.items[1].question_id if expected else 0)
    assert expected is not None
    async with presses() as store:
        assert await store.owned(attempt_id, Account.telegram(1001)) == expected
        assert await store.owned(attempt_id, Account.telegram(1002)) is None  # somebody else's
        assert await store.owned(attempt_id + 1, Account.telegram(1001)) is None
        assert await store.answer_of(expected.items[1].question_id) == key
        assert await store.answer_of(10**6) is None
    assert expected.items[0].answered_at == T1


async def test_writes_what_the_repositories_read(
    uows: SqlUnitOfWorkFactory, presses: DriverPressStores, attempt_id: int
) -> None:
    finished_at = T1 + timedelta(minutes=5)
    async with presses() as store:
        owned = await store.owned(attempt_id, Account.telegram(1001))
        assert owned is not None
        person = owned.person_id
        assert await store.record_answer(attempt_id, 0, 2, False, T1)
        assert not await store.record_answer(attempt_id, 0, 1, True, T1)  # compare-and-set
        assert not await store.record_answer(attempt_id, 9, 1, True, T1)
        assert await store.count_for(person, 1) == 1
        assert await store.results_for(person, 1) == []
        assert await store.finish(attempt_id, AttemptStatus.SUBMITTED, finished_at, 0, 301.5)
        assert not await store.finish(attempt_id, AttemptStatus.EXPIRED, finished_at, 3, 1.0)
        mine = await store.results_for(person, 1)
        await store.commit()
    async with uows(write=False) as uow:
        attempt = await uow.attempts.get(attempt_id)
        theirs = await uow.attempts.results_for(person, 1)
        assert await uow.attempts.count_for(person, 1) == 1
        assert await uow.attempts.best_results(1) == theirs  # flagged as the counting one
    assert attempt is not None
    first = attempt.items[0]
    assert (first.choice, first.correct, first.answered_at) == (2, False, T1)
    assert attempt.status is AttemptStatus.SUBMITTED
    assert attempt.finished_at == finished_at
    assert (attempt.correct_count, attempt.duration_seconds) == (0, 301.5)
    assert mine == theirs
    assert [r.attempt_id for r in theirs] == [attempt_id]


async def test_leaving_without_commit_rolls_back(
    uows: SqlUnitOfWorkFactory, presses: DriverPressStores, attempt_id: int
) -> None:
    async with presses() as store:
        assert await store.record_answer(attempt_id, 0, 2, True, T1)
    with pytest.raises(RuntimeError):
        async with presses() as store:
            assert await store.record_answer(attempt_id, 0, 1, True, T1)
            raise RuntimeError("the handler failed")
    async with uows(write=False) as uow:
        attempt = await uow.attempts.get(attempt_id)
    assert attempt is not None
    assert attempt.items[0].choice is None
    # The connection went back clean: the next press works.
    async with presses() as store:
        assert await store.record_answer(attempt_id, 0, 0, True, T1)
        await store.commit()


async def _service_with_presses(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock, presses: DriverPressStores
) -> tuple[ContestService, SqlUnitOfWorkFactory, int, int]:
    _, uows, telegram_id, attempt_id = await start_exam(seeded, rules, clock)
    return ContestService(uows, clock, rules, presses=presses), uows, telegram_id, attempt_id


async def test_concurrent_presses_record_one(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock, presses: DriverPressStores
) -> None:
    service, uows, telegram_id, attempt_id = await _service_with_presses(
        seeded, rules, clock, presses
    )
    clock.advance(seconds=10)

    async def press(choice: int) -> Any:
        try:
            return await service.exams.answer(telegram_id, attempt_id, 0, choice)
        except ContestError as exc:
            return exc.code

    outcomes = await asyncio.gather(*(press(i % 3) for i in range(10)))
    assert sorted(map(str, outcomes)).count("stale_question") == 9
    async with uows(write=False) as uow:
        attempt = await uow.attempts.get(attempt_id)
    assert attempt is not None
    assert [item.answered for item in attempt.items].count(True) == 1


async def test_a_whole_attempt_through_the_press_store(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock, presses: DriverPressStores
) -> None:
    """Every answer, the last one (which finishes the attempt) included, then the same
    summary as the unit of work computes."""
    service, _, telegram_id, attempt_id = await _service_with_presses(seeded, rules, clock, presses)
    total = rules.round1.questions
    for position in range(total):
        clock.advance(seconds=7)
        outcome = await service.exams.answer(telegram_id, attempt_id, position, position % 3)
        if position < total - 1:
            assert outcome.next_card is not None
            assert outcome.next_card.position == position + 1
    assert outcome.summary is not None and not outcome.expired
    assert outcome.summary.result.duration_seconds == pytest.approx(7.0 * total)
    assert outcome.summary == await service.exams.attempt_summary(attempt_id)
    with pytest.raises(ContestError) as caught:
        await service.exams.answer(telegram_id, attempt_id, total - 1, 0)
    assert caught.value.code == "attempt_finished"


async def test_a_press_after_the_deadline_closes_the_attempt(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock, presses: DriverPressStores
) -> None:
    service, uows, telegram_id, attempt_id = await _service_with_presses(
        seeded, rules, clock, presses
    )
    await service.exams.answer(telegram_id, attempt_id, 0, 1)
    clock.advance(rules.round1.duration + timedelta(seconds=1))
    outcome = await service.exams.answer(telegram_id, attempt_id, 1, 1)
    assert outcome.expired and outcome.summary is not None
    assert outcome.summary.result.status is AttemptStatus.EXPIRED
    async with uows(write=False) as uow:
        attempt = await uow.attempts.get(attempt_id)
    assert attempt is not None
    assert attempt.items[1].choice is None  # a late answer is not recorded


async def test_many_presses_on_a_small_pool_with_a_stale_question_cache(
    database_url: str, rules: ContestRules, clock: ManualClock
) -> None:
    """Every press finds the question cache stale (a fresh process) and needs a connection
    to refresh it: a press must not hold its own while it waits, or a small pool deadlocks
    (seen on PostgreSQL: 64 presses in flight, 15 connections)."""
    from storage.db import create_engine
    from storage.schema import migrate
    from tests.conftest import seed
    from tests.test_storage import add_person as add

    small = create_engine(database_url, pool_size=2, max_overflow=0, pool_timeout=5)
    stores = DriverPressStores(small)
    try:
        await migrate(small)
        await seed(small, rules, clock)
        uows = SqlUnitOfWorkFactory(small)
        starter = ContestService(uows, clock, rules)
        cards = []
        for n in range(8):
            await add(uows, 9100 + n, f"09140000{n:02d}")
            cards.append(await starter.exams.start_attempt(Account.telegram(9100 + n)))
        pressing = ContestService(uows, clock, rules, presses=stores)  # empty cache
        async with asyncio.timeout(20):
            outcomes = await asyncio.gather(
                *(
                    pressing.exams.answer(Account.telegram(9100 + n), card.attempt_id, 0, 1)
                    for n, card in enumerate(cards)
                )
            )
        assert [o.next_card.position if o.next_card else None for o in outcomes] == [1] * 8
    finally:
        stores.close()
        await small.dispose()


async def test_presses_beyond_the_pool_wait_for_a_connection_instead_of_opening_one(
    database_url: str, rules: ContestRules, clock: ManualClock
) -> None:
    """On PostgreSQL the pool is fixed: 24 presses at once on a pool of 3 open 3 connections
    in all. (With overflow connections, each press beyond the pool opened one and closed it
    again: a new server process per press.)"""
    from sqlalchemy import event

    from storage.db import create_engine
    from storage.schema import migrate
    from tests.conftest import seed
    from tests.test_storage import add_person as add

    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: the SQLite press store has one connection of its own")
    small = create_engine(database_url, pg_pool_size=3)
    opened: list[object] = []
    event.listen(small.sync_engine, "connect", lambda conn, record: opened.append(conn))
    stores = DriverPressStores(small)
    try:
        await migrate(small)
        await seed(small, rules, clock)
        uows = SqlUnitOfWorkFactory(small)
        service = ContestService(uows, clock, rules, presses=stores)
        cards = []
        for n in range(24):
            await add(uows, 9200 + n, f"09150000{n:02d}")
            cards.append(await service.exams.start_attempt(Account.telegram(9200 + n)))
        async with asyncio.timeout(20):
            outcomes = await asyncio.gather(
                *(
                    service.exams.answer(Account.telegram(9200 + n), card.attempt_id, 0, 2)
                    for n, card in enumerate(cards)
                )
            )
        assert [o.next_card.position if o.next_card else None for o in outcomes] == [1] * 24
        assert len(opened) <= 3
    finally:
        stores.close()
        await small.dispose()


async def test_a_driver_error_surfaces_as_a_database_error(
    engine: AsyncEngine, uows: SqlUnitOfWorkFactory, presses: DriverPressStores, attempt_id: int
) -> None:
    """Logged like any database failure (its kind only), and the connection stays usable."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE attempt_items RENAME TO attempt_items_gone"))
    with pytest.raises(DBAPIError) as caught:
        async with presses() as store:
            await store.owned(attempt_id, Account.telegram(1001))
    assert type(caught.value.orig).__module__.split(".")[0] in ("sqlite3", "asyncpg")
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE attempt_items_gone RENAME TO attempt_items"))
    async with presses() as store:
        assert await store.owned(attempt_id, Account.telegram(1001)) is not None


@pytest.mark.postgres
async def test_presses_survive_a_database_restart(
    database_url: str, uows: SqlUnitOfWorkFactory, attempt_id: int
) -> None:
    """Pooled connections the server dropped (restart, failover) are thrown away at BEGIN;
    no press fails for them."""
    from sqlalchemy import text

    from storage.db import create_engine

    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    engine = create_engine(database_url)
    stores = DriverPressStores(engine)
    admin = create_engine(database_url)
    try:
        held = [await engine.connect() for _ in range(4)]
        pids = [await conn.scalar(text("SELECT pg_backend_pid()")) for conn in held]
        for conn in held:
            await conn.close()  # back to the pool, alive
        async with admin.begin() as conn:
            for pid in pids:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await asyncio.sleep(0.2)
        for _ in range(5):
            async with stores() as store:
                assert await store.owned(attempt_id, Account.telegram(1001)) is not None
    finally:
        stores.close()
        await engine.dispose()
        await admin.dispose()
