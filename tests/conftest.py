"""Shared fixtures: the contest rules, an injected clock, databases, and a running bot
talking to the fake Bot API server over real HTTP."""

from __future__ import annotations

import os

# python-telegram-bot 22 warns (an error under filterwarnings=error) on every RetryAfter
# unless durations are timedeltas: opt in before telegram is imported.
os.environ.setdefault("PTB_TIMEDELTA", "1")

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_application, runtime, start, stop
from bot.config import load_rules
from bot.settings import Settings
from contest.clock import ManualClock
from contest.importing import validate_questions, validate_units
from contest.rules import LOCAL_TZ, ContestRules
from contest.services import ContestService
from fakes.telegram import FakeBotApi, FakeMessage, FakeUser
from storage.db import create_engine
from storage.files import read_table
from storage.schema import migrate
from storage.uow import SqlUnitOfWorkFactory

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "storage" / "samples"
PG_ENV = "CONTEST_TEST_POSTGRES_URL"

# Inside the round-1 window of the shipped contest.example.toml (01/8–15/8/2024).
EXAM_DAY = datetime(2024, 8, 5, 9, 0, tzinfo=LOCAL_TZ)


@pytest.fixture
def rules() -> ContestRules:
    return load_rules(ROOT / "contest.example.toml")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(EXAM_DAY)


def _pg_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'contest.db'}"
        return
    base = _pg_url()
    if base is None:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (set by .ci/run)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


def pg_engine(url: str) -> AsyncEngine:
    """An engine for a test database URL (a PostgreSQL one carries its schema)."""
    return create_engine(url)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = pg_engine(database_url)
    try:
        await migrate(eng)
        yield eng
    finally:
        await eng.dispose()


async def seed(engine: AsyncEngine, rules: ContestRules, clock: ManualClock) -> None:
    """Import the shipped sample question bank and units."""
    service = ContestService(SqlUnitOfWorkFactory(engine), clock, rules)
    header, rows = read_table(SAMPLES / "questions.csv")
    await service.console.import_questions(validate_questions(header, rows))
    header, rows = read_table(SAMPLES / "units.csv")
    await service.console.import_units(validate_units(header, rows))


@pytest.fixture
async def seeded(engine: AsyncEngine, rules: ContestRules, clock: ManualClock) -> AsyncEngine:
    await seed(engine, rules, clock)
    return engine


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        yield api


class BotRunner:
    """Starts and stops the real application against the fake server; restartable."""

    def __init__(
        self,
        api: FakeBotApi,
        rules: ContestRules,
        clock: ManualClock,
        engine_factory: Callable[[], AsyncEngine],
        **overrides: Any,
    ) -> None:
        self.api = api
        self.rules = rules
        self.clock = clock
        self.engine_factory = engine_factory
        self.settings = Settings(
            bot_token=api.token,
            bot_api_url=api.base_url,
            database_url="sqlite://",  # unused: the engine is given
            sweep_seconds=0.1,
            _env_file=None,
            **overrides,
        )
        self.app: Any = None

    @property
    def service(self) -> ContestService:
        return runtime(self.app).service

    async def start(self) -> None:
        self.app = build_application(
            self.settings, self.rules, clock=self.clock, engine=self.engine_factory()
        )
        await start(self.app, poll_timeout=1)

    async def stop(self) -> None:
        if self.app is not None:
            await stop(self.app)
            self.app = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@pytest.fixture
async def bot(
    fake_api: FakeBotApi,
    rules: ContestRules,
    clock: ManualClock,
    seeded: AsyncEngine,
    database_url: str,
) -> AsyncIterator[BotRunner]:
    runner = BotRunner(fake_api, rules, clock, lambda: pg_engine(database_url))
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


# ------------------------------------------------------------------ conversation helpers


def has(fragment: str) -> Callable[[FakeMessage], bool]:
    return lambda m: fragment in m.text


async def say(user: FakeUser, text: str, expect: str, timeout: float = 5.0) -> FakeMessage:
    await user.send_text(text)
    return await user.wait_for(has(expect), timeout)


async def press(user: FakeUser, label: str, expect: str, **kw: Any) -> FakeMessage:
    await user.press(label, **kw)
    return await user.wait_for(has(expect))


async def register_civil_servant(
    user: FakeUser,
    *,
    name: str = "Nguyễn Văn An",
    phone: str = "0912345678",
    birth: str = "25/03/1990",
    kind_label: str = "UBND phường",
    unit_label: str = "UBND phường Cát Linh",
    leader: bool = False,
) -> FakeMessage:
    await say(user, "/dangky", "Tôi đồng ý")
    await press(user, "✅ Tôi đồng ý", "họ và tên")
    await say(user, name, "ngày sinh")
    await say(user, birth, "Chia sẻ số điện thoại")
    await user.share_contact(phone)
    await user.wait_for(has("tư cách nào"))
    await press(user, "🏛 Cán bộ", "thuộc khối nào")
    await press(user, kind_label, "Chọn")
    await user.send_text(unit_label.split()[-1])  # search by part of the name
    await user.wait_for(has("Kết quả tìm kiếm"))
    await press(user, unit_label, "chức vụ")
    await press(user, "Lãnh đạo" if leader else "Công chức", "kiểm tra lại")
    await user.press("✅ Xác nhận đăng ký")
    return await user.wait_for(has("đăng ký dự thi thành công"))


async def register_citizen(
    user: FakeUser,
    *,
    name: str = "Trần Thị Bình",
    phone: str = "0987654321",
    birth: str = "01/01/1995",
    ward_label: str = "phường Kim Liên",
) -> FakeMessage:
    await say(user, "/dangky", "Tôi đồng ý")
    await press(user, "✅ Tôi đồng ý", "họ và tên")
    await say(user, name, "ngày sinh")
    await say(user, birth, "Chia sẻ số điện thoại")
    await user.share_contact(phone)
    await user.wait_for(has("tư cách nào"))
    await press(user, "👤 Công dân", "phường")
    await user.send_text("kim lien")  # accent-insensitive search
    await user.wait_for(has("Kết quả tìm kiếm"))
    await press(user, ward_label, "kiểm tra lại")
    await user.press("✅ Xác nhận đăng ký")
    return await user.wait_for(has("đăng ký dự thi thành công"))


# The organiser of the settings in the console tests (CONTEST_ADMIN_IDS).
ADMIN = 9001


@pytest.fixture
async def console_bot(
    fake_api: FakeBotApi,
    rules: ContestRules,
    clock: ManualClock,
    seeded: AsyncEngine,
    database_url: str,
) -> AsyncIterator[BotRunner]:
    """The bot with ``ADMIN`` an organiser of the settings (a test file may override it)."""
    runner = BotRunner(
        fake_api, rules, clock, lambda: pg_engine(database_url), admin_ids=str(ADMIN)
    )
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()
