"""Two real bot processes on one PostgreSQL database, behind a load balancer, behave like
one: any process takes any update, an answer is recorded once whichever process gets it,
and the scheduler lease moves to the survivor when its holder is killed mid-contest."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.model import Channel
from contest.rules import LOCAL_TZ
from fakes.telegram import FakeBotApi, FakeMessage, FakeUser
from scheduler.deadlines import scheduler_lease
from storage import leases
from storage import models as m
from tests.conftest import (
    PG_ENV,
    ROOT,
    has,
    pg_engine,
    register_civil_servant,
    say,
    seed,
)
from tests.test_e2e_exam import correct_label

LEASE = scheduler_lease([Channel.TELEGRAM])  # the lease of a Telegram-only bot

pytestmark = pytest.mark.postgres

SECRET = "multi_process_secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Balancer:
    """Round-robin HTTP forwarding to the bot processes; skips a backend that is down."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.alive = set(backends)
        self.served: Counter[int] = Counter()
        self._next = 0
        self.port = free_port()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-")}
        headers["Content-Type"] = request.headers.get("Content-Type", "application/json")
        for _ in range(len(self.backends)):
            port = self.backends[self._next % len(self.backends)]
            self._next += 1
            if port not in self.alive:
                continue
            try:
                async with self._session.post(
                    f"http://127.0.0.1:{port}{request.path}", data=body, headers=headers
                ) as resp:
                    self.served[port] += 1
                    return web.Response(status=resp.status, body=await resp.read())
            except aiohttp.ClientConnectionError:
                self.alive.discard(port)
        return web.Response(status=502)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


def contest_file(tmp_path: Path) -> Path:
    """Round 1 open around the real date: these processes run on the real clock."""
    today = datetime.now(LOCAL_TZ).date()
    path = tmp_path / "contest.toml"
    path.write_text(
        (ROOT / "contest.example.toml")
        .read_text(encoding="utf-8")
        .replace("starts = 2024-07-15", f"starts = {today - timedelta(days=3)}")
        .replace("ends = 2024-08-15", f"ends = {today + timedelta(days=3)}")
        .replace("opens = 2024-08-01", f"opens = {today - timedelta(days=1)}")
        .replace("closes = 2024-08-15", f"closes = {today + timedelta(days=1)}")
        .replace("2024-09-05", str(today + timedelta(days=5))),
        encoding="utf-8",
    )
    return path


class BotProcess:
    def __init__(self, name: str, port: int, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = port
        self.log = (log_dir / f"{name}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "--webhook"],
            env={**env, "CONTEST_WEBHOOK_PORT": str(port)},
            cwd=log_dir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def wait_healthy(self, timeout: float = 30) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as session:
            while loop.time() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"{self.name} exited: {self.read_log()}")
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/healthz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.name} not healthy: {self.read_log()}")

    def read_log(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-4000:]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture
async def cluster(
    tmp_path: Path, fake_api: FakeBotApi, database_url: str
) -> AsyncIterator[tuple[list[BotProcess], Balancer, AsyncEngine]]:
    if "postgresql" not in database_url:
        pytest.skip("several processes need PostgreSQL")
    if not os.environ.get(PG_ENV):
        pytest.skip(f"needs {PG_ENV}")
    engine = pg_engine(database_url)
    from storage.schema import migrate

    await migrate(engine)
    from bot.config import load_rules
    from contest.clock import SystemClock

    config = contest_file(tmp_path)
    await seed(engine, load_rules(config), SystemClock())  # type: ignore[arg-type]
    ports = [free_port(), free_port()]
    balancer = Balancer(ports)
    await balancer.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEST_") or k == PG_ENV}
    env.update(
        CONTEST_BOT_TOKEN=fake_api.token,
        CONTEST_BOT_API_URL=fake_api.base_url,
        CONTEST_DATABASE_URL=database_url,
        CONTEST_CONFIG=str(config),
        CONTEST_WEBHOOK_URL=f"http://127.0.0.1:{balancer.port}/tg/hook",
        CONTEST_WEBHOOK_SECRET=SECRET,
        CONTEST_SWEEP_SECONDS="0.3",
        CONTEST_LEASE_SECONDS="2",
        CONTEST_CHAT_SEND_INTERVAL="0.1",
        PYTHONPATH=str(ROOT),
    )
    processes: list[BotProcess] = []
    try:
        for name, port in zip(("a", "b"), ports, strict=True):
            process = BotProcess(name, port, env, tmp_path)
            processes.append(process)
            await process.wait_healthy()
        yield processes, balancer, engine
    finally:
        for process in processes:
            process.stop()
        await balancer.stop()
        await engine.dispose()


def pid_of(holder: str) -> int:
    return int(holder.split(":")[1])


async def answer(
    user: FakeUser, engine: AsyncEngine, card: FakeMessage, attempt_id: int, position: int
) -> None:
    """Answer question ``position`` (0-based) right, and wait for the card to move on."""
    label = await correct_label(engine, attempt_id, position)
    data = user.message(card.message_id).inline_data[label]
    assert data.split(":")[3] == str(position)
    query = await user.press_data(data, card.message_id)
    await user.wait_callback_answer(query, timeout=10)
    after = f"Câu {position + 2}/20" if position < 19 else "hoàn thành"
    await user.wait_for(lambda msg: msg.message_id == card.message_id and after in msg.text, 10)


async def test_two_processes_behave_like_one(cluster, fake_api: FakeBotApi):
    (a, b), balancer, engine = cluster
    user = fake_api.user(5001)
    await register_civil_servant(user, phone="0950000001")
    assert balancer.served[a.port] > 0 and balancer.served[b.port] > 0  # both took updates

    intro = await say(user, "/thi", "Bắt đầu")
    await user.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
    card = await user.wait_for(has("Câu 1/20"), timeout=10)
    async with engine.connect() as conn:
        attempt_id = (await conn.execute(select(m.AttemptRow.id))).scalar_one()

    # The same press twice, taken by the two processes: recorded once.
    label = await correct_label(engine, attempt_id, 0)
    data = user.message(card.message_id).inline_data[label]
    first = await user.press_data(data, card.message_id)
    second = await user.press_data(data, card.message_id)
    answers = [await user.wait_callback_answer(q, timeout=10) for q in (first, second)]
    assert sum(1 for x in answers if x.text and "đã được trả lời" in x.text) == 1
    await user.wait_for(has("Câu 2/20"), timeout=10)
    for position in range(1, 8):
        await answer(user, engine, card, attempt_id, position)

    # Kill the process holding the scheduler lease, mid-attempt.
    holder = await leases.holder_of(engine, LEASE)
    assert holder is not None
    victim, survivor = (a, b) if pid_of(holder[0]) == a.proc.pid else (b, a)
    victim.kill()
    for position in range(8, 20):
        await answer(user, engine, card, attempt_id, position)
    done = user.message(card.message_id)
    assert "20/20" in done.text
    async with engine.connect() as conn:
        answered = (
            (
                await conn.execute(
                    select(m.AttemptItemRow.position).where(m.AttemptItemRow.choice.is_not(None))
                )
            )
            .scalars()
            .all()
        )
    assert sorted(answered) == list(range(20))

    # The survivor takes the lease over once it runs out.
    for _ in range(50):
        holder = await leases.holder_of(engine, LEASE)
        if holder is not None and pid_of(holder[0]) == survivor.proc.pid:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"lease not taken over: {holder}\n{survivor.read_log()}")

    # A deadline that passes now is closed once, by the survivor, with one result message.
    intro = await say(user, "/thi", "Bắt đầu", timeout=10)
    await user.press("▶️ Bắt đầu làm bài", message_id=intro.message_id)
    card2 = await user.wait_for(has("Câu 1/20"), timeout=10)
    async with engine.begin() as conn:
        second_id = (
            await conn.execute(select(m.AttemptRow.id).where(m.AttemptRow.number == 2))
        ).scalar_one()
    await answer(user, engine, card2, second_id, 0)
    async with engine.begin() as conn:  # the database decides: move the deadline to the past
        await conn.execute(
            update(m.AttemptRow)
            .where(m.AttemptRow.id == second_id)
            .values(deadline_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    result = await user.wait_for_new_message(timeout=10, predicate=has("Đã hết thời gian"))
    assert "1/20" in result.text and "20/20" in result.text
    await asyncio.sleep(1.0)  # a few more sweeps: still one result
    assert sum(1 for msg in user.bot_messages() if "Đã hết thời gian" in msg.text) == 1
    async with engine.connect() as conn:
        outbox = (
            await conn.execute(
                select(m.OutboxRow.outcome, m.OutboxRow.sent_at).order_by(m.OutboxRow.id)
            )
        ).all()
    # The first attempt's result was shown in the reply to its last press; the second's
    # went out from the outbox.
    assert [row.outcome for row in outbox] == ["inline", "sent"]
