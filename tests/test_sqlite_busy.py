"""Another process holds SQLite's write lock: the bot waits for it without freezing.

Statements run inline on the event loop (``storage.sqlite_inline``). While another process
(here a subprocess in ``BEGIN IMMEDIATE``, as ``contest-bot import-*`` would be) holds the
write lock, the bot's writers must wait asynchronously: the loop keeps serving (a ticker,
readers, ``/healthz``), the writers complete once the lock is released, and give up with a
busy error, having written nothing, when it outlives their bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_application
from contest.clock import ManualClock
from contest.importing import UnitRow
from contest.model import UnitKind
from contest.rules import ContestRules
from fakes.telegram import FakeBotApi
from storage.db import create_engine
from storage.models import LeaseRow
from storage.presses import DriverPressStores
from storage.schema import migrate
from storage.uow import SqlUnitOfWorkFactory
from tests.test_storage import add_attempt, add_person, add_questions
from tests.test_webhook import free_port, webhook_settings

T1 = datetime(2024, 8, 5, 2, 3, 4, 567891, tzinfo=UTC)
TICK = 0.01
MAX_GAP = 0.2  # the loop may be late by this much at most while writers wait

# Another process: take the write lock, say so, hold it, release it, say so.
HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
print("released", flush=True)
"""


class LockHolder:
    """A subprocess holding ``BEGIN IMMEDIATE`` on the database file for ``seconds``."""

    def __init__(self, path: Path, seconds: float) -> None:
        self.path = path
        self.seconds = seconds
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> LockHolder:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOLDER, str(self.path), str(self.seconds),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 10)
        assert line.strip() == b"locked"
        self.locked_at = time.monotonic()
        return self

    async def released(self) -> float:
        """Wait for the release; the time it happened (time.monotonic)."""
        assert self.process is not None and self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), self.seconds + 10)
        assert line.strip() == b"released"
        return time.monotonic()

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()


class Ticker:
    """Ticks every 10 ms on the loop and records the longest gap between two ticks."""

    def __init__(self) -> None:
        self.max_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            last = now

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "contest.db"


async def _engine(db_path: Path, **kwargs: Any) -> AsyncEngine:
    engine = create_engine(f"sqlite+aiosqlite:///{db_path}", **kwargs)
    await migrate(engine)
    return engine


@pytest.fixture
async def engine(db_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await _engine(db_path)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _attempt(uows: SqlUnitOfWorkFactory) -> int:
    person = await add_person(uows, 1001, "0912000001")
    return await add_attempt(uows, person.id, await add_questions(uows, 3))


async def _unit_count(uows: SqlUnitOfWorkFactory) -> int:
    async with uows(write=False) as uow:
        return await uow.units.count()


async def _add_unit(uows: SqlUnitOfWorkFactory, code: str) -> float:
    """A write unit of work; returns when it committed (time.monotonic)."""
    async with uows() as uow:
        await uow.units.upsert([UnitRow(code, f"Đơn vị {code}", UnitKind.DEPARTMENT, 5)])
        await uow.commit()
    return time.monotonic()


async def _press(presses: DriverPressStores, attempt_id: int, position: int) -> float:
    """A press's transaction on the answer path; returns when it committed."""
    async with presses() as store:
        assert await store.record_answer(attempt_id, position, 1, True, T1)
        await store.commit()
    return time.monotonic()


async def _choices(uows: SqlUnitOfWorkFactory, attempt_id: int) -> list[int | None]:
    async with uows(write=False) as uow:
        attempt = await uow.attempts.get(attempt_id)
    assert attempt is not None
    return [item.choice for item in attempt.items]


async def test_writers_wait_for_another_process_without_freezing_the_loop(
    engine: AsyncEngine, db_path: Path
) -> None:
    """(a) While another process holds the write lock for 1.5 s, a write unit of work, a
    press and a lease renewal wait for it and the loop keeps ticking; readers are served
    meanwhile. (b) All three complete, in full, once the lock is released."""
    uows = SqlUnitOfWorkFactory(engine)
    presses = DriverPressStores(engine)
    try:
        attempt_id = await _attempt(uows)
        async with Ticker() as ticker, LockHolder(db_path, 1.5) as holder:
            writers: list[Awaitable[Any]] = [
                _add_unit(uows, "U1"),
                _press(presses, attempt_id, 0),
                _renew_lease(engine),
            ]
            tasks = [asyncio.ensure_future(w) for w in writers]
            await asyncio.sleep(0.3)
            assert ticker.max_gap < MAX_GAP, f"the loop stalled for {ticker.max_gap:.3f} s"
            assert not any(task.done() for task in tasks)  # they are waiting for the lock
            started = time.monotonic()
            assert await _unit_count(uows) == 0  # a reader is not held up
            assert time.monotonic() - started < MAX_GAP
            released_at = await holder.released()
            finished = await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert ticker.max_gap < MAX_GAP, f"the loop stalled for {ticker.max_gap:.3f} s"
        for committed_at in finished[:2]:
            assert released_at - 0.05 <= committed_at < released_at + 1.0
        assert await _unit_count(uows) == 1
        assert await _choices(uows, attempt_id) == [1, None, None]
        assert await _lease_holder(engine) == "me"
    finally:
        presses.close()


async def _renew_lease(engine: AsyncEngine) -> float:
    from storage.leases import try_acquire

    assert await try_acquire(engine, "scheduler", "me", T1, 45)
    return time.monotonic()


async def _lease_holder(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return (await conn.execute(select(LeaseRow.holder))).scalar()


async def test_a_lock_beyond_the_bound_fails_the_waiting_writes_with_a_busy_error(
    db_path: Path,
) -> None:
    """(c) The lock outlives the bound (1 s here): every waiting write, those queued
    behind the first one included, fails with the busy error about 1 s after it began,
    without freezing the loop, and has written nothing; afterwards writes work again."""
    from storage.sqlite_inline import DatabaseBusy

    engine = await _engine(db_path, sqlite_busy_wait=1.0)
    uows = SqlUnitOfWorkFactory(engine)
    presses = DriverPressStores(engine)
    try:
        attempt_id = await _attempt(uows)

        async def outcome(write: Awaitable[Any]) -> tuple[BaseException | None, float]:
            started = time.monotonic()
            try:
                await write
            except Exception as exc:
                return exc, time.monotonic() - started
            return None, time.monotonic() - started

        async with Ticker() as ticker, LockHolder(db_path, 2.0) as holder:
            outcomes = await asyncio.gather(
                outcome(_add_unit(uows, "U1")),
                outcome(_press(presses, attempt_id, 0)),
                outcome(_add_unit(uows, "U2")),
                outcome(_renew_lease(engine)),
            )
            assert time.monotonic() < holder.locked_at + 2.0  # still locked: they gave up
            await holder.released()
        assert ticker.max_gap < MAX_GAP, f"the loop stalled for {ticker.max_gap:.3f} s"
        for error, waited in outcomes:
            # What a handler gets: SQLAlchemy's OperationalError (a DBAPIError) whose
            # driver error is DatabaseBusy, an sqlite3.OperationalError coded SQLITE_BUSY.
            assert isinstance(error, OperationalError), error
            assert isinstance(error, DBAPIError)
            assert isinstance(error.orig, DatabaseBusy)
            assert error.orig.sqlite_errorname == "SQLITE_BUSY"
            assert 0.9 <= waited < 1.8, waited  # the queued ones too: one bound, not one each
        assert await _unit_count(uows) == 0
        assert await _choices(uows, attempt_id) == [None, None, None]
        assert await _lease_holder(engine) is None
        # Nothing is left locked or half-open: the same writers succeed now.
        await _add_unit(uows, "U3")
        await _press(presses, attempt_id, 1)
        await _renew_lease(engine)
        assert await _unit_count(uows) == 1
        assert await _choices(uows, attempt_id) == [None, 1, None]
    finally:
        presses.close()
        await engine.dispose()


def _healthz(url: str) -> tuple[int, float]:
    """GET from another thread, so the time measured is the server's, not our loop's."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            status = response.status
            assert json.loads(response.read()) == {"status": "ok"}
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.monotonic() - started


async def test_healthz_answers_at_once_while_another_process_holds_the_lock(
    fake_api: FakeBotApi, rules: ContestRules, clock: ManualClock, db_path: Path
) -> None:
    """(d) The real webhook server, one of its writers waiting for another process's lock
    (4 s): /healthz answers 200 within 2 s, since reading needs no write lock."""
    from bot.webhook import HEALTH_PATH, start_webhook, stop_webhook

    port = free_port()
    settings = webhook_settings(fake_api, port)
    engine = await _engine(db_path)
    app = build_application(settings, rules, clock=clock, engine=engine, polling=False)
    server = await start_webhook(app, settings)
    try:
        uows = SqlUnitOfWorkFactory(engine)
        async with LockHolder(db_path, 4.0) as holder:
            # The request leaves another thread 0.3 s from now, while the writer waits.
            probe = asyncio.ensure_future(
                asyncio.to_thread(_delayed, 0.3, _healthz, f"http://127.0.0.1:{port}{HEALTH_PATH}")
            )
            writer = asyncio.ensure_future(_add_unit(uows, "U1"))
            status, elapsed = await probe
            assert (status, elapsed < 2.0) == (200, True), (status, elapsed)
            assert not writer.done()
            assert time.monotonic() < holder.locked_at + 4.0
            await holder.released()
            await asyncio.wait_for(writer, 5)
    finally:
        await stop_webhook(server)
        await engine.dispose()


def _delayed(seconds: float, function: Any, *args: Any) -> Any:
    time.sleep(seconds)
    return function(*args)


async def test_an_import_from_the_command_line_runs_beside_the_bot_s_writes(
    engine: AsyncEngine, db_path: Path, tmp_path: Path
) -> None:
    """``contest-bot import-questions`` (another process, taking the write lock for its
    import) succeeds while this process writes every few milliseconds, and neither side
    freezes this loop or fails."""
    from tests.test_cli import COMMAND, EXAMPLE_TOML, SAMPLES

    uows = SqlUnitOfWorkFactory(engine)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEST_")}
    env.update(CONTEST_DATABASE_URL=f"sqlite:///{db_path}", CONTEST_CONFIG=str(EXAMPLE_TOML))
    written = 0

    async def keep_writing(stop: asyncio.Event) -> None:
        nonlocal written
        while not stop.is_set():
            await _add_unit(uows, f"W{written}")
            written += 1
            await asyncio.sleep(0.002)

    stop = asyncio.Event()
    async with Ticker() as ticker:
        writing = asyncio.ensure_future(keep_writing(stop))
        cli = await asyncio.create_subprocess_exec(
            *COMMAND, "import-questions", str(SAMPLES / "questions.csv"),
            cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(cli.communicate(), 60)
        stop.set()
        await writing
    assert cli.returncode == 0, err.decode()
    assert ticker.max_gap < MAX_GAP, f"the loop stalled for {ticker.max_gap:.3f} s"
    assert written > 10
    async with uows(write=False) as uow:
        assert await uow.questions.count() == 86
        assert await uow.units.count() == written
