"""The log: no secret and no personal data in it, at any level, in any traceback.

The end-to-end tests run the real application against the fake Bot API server, with
logging configured by the same function ``contest-bot`` uses, writing to a string."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import build_application
from bot.logs import MASK, configure_logging, register_secret, register_settings_secrets
from bot.settings import Settings
from bot.webhook import start_webhook, stop_webhook
from contest.clock import ManualClock
from contest.rules import ContestRules
from fakes.telegram import FakeBotApi
from tests.conftest import BotRunner, pg_engine, register_civil_servant, say

SECRET = "wh_S3cret-for-the-log-test"
PATH = "/tg/hook-4f9c2a7e"
# Shaped like a real token (BotFather: a numeric bot id, a colon, 35 characters).
TOKEN_SHAPED = "7312345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


# ------------------------------------------------------------------ fixtures


@dataclass
class SavedLogging:
    handlers: list[logging.Handler]
    root_level: int
    levels: dict[str, int]
    excepthook: Any

    @classmethod
    def save(cls) -> SavedLogging:
        root = logging.getLogger()
        levels = {
            name: logger.level
            for name, logger in logging.root.manager.loggerDict.items()
            if isinstance(logger, logging.Logger)
        }
        return cls(list(root.handlers), root.level, levels, sys.excepthook)

    def restore(self) -> None:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if handler not in self.handlers:
                root.removeHandler(handler)
        root.setLevel(self.root_level)
        for name, logger in logging.root.manager.loggerDict.items():
            if isinstance(logger, logging.Logger):
                logger.setLevel(self.levels.get(name, logging.NOTSET))
        sys.excepthook = self.excepthook


Configure = Callable[..., io.StringIO]


@pytest.fixture
def log_to_string() -> Iterator[Configure]:
    """``configure(level, raw_payloads=False)``: the product's logging set-up, writing to a
    string it returns; everything is put back afterwards."""
    saved = SavedLogging.save()

    def configure(level: str = "DEBUG", *, raw_payloads: bool = False) -> io.StringIO:
        out = io.StringIO()
        configure_logging(level, raw_payloads=raw_payloads, stream=out)
        return out

    try:
        yield configure
    finally:
        saved.restore()


async def wait_for_text(out: io.StringIO, fragment: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while fragment not in out.getvalue():
        if time.monotonic() > deadline:
            raise AssertionError(f"{fragment!r} never logged:\n{out.getvalue()[-3000:]}")
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StallingRelay:
    """A TCP relay in front of the fake Bot API that can stop answering like an unreachable
    Telegram: the open connections are cut and new ones are never accepted (the accept
    queue is left full, so a client's connect attempt hangs until its connect timeout)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.setblocking(False)
        self.port = int(self.listener.getsockname()[1])
        self._accepting: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._fillers: list[socket.socket] = []

    def start(self) -> None:
        self._accepting = asyncio.create_task(self._accept_loop())

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            connection, _ = await loop.sock_accept(self.listener)
            task = asyncio.create_task(self._relay(connection))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _relay(self, connection: socket.socket) -> None:
        client_reader, client_writer = await asyncio.open_connection(sock=connection)
        self._writers.add(client_writer)
        try:
            server_reader, server_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            client_writer.close()
            return
        self._writers.add(server_writer)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        try:
            await asyncio.gather(
                pipe(client_reader, server_writer), pipe(server_reader, client_writer)
            )
        finally:
            for writer in (client_writer, server_writer):
                writer.close()
                self._writers.discard(writer)

    async def _stop_accepting(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
            self._accepting = None

    async def stall(self) -> None:
        await self._stop_accepting()
        for writer in list(self._writers):
            writer.close()
        for _ in range(3):  # fill the accept queue: later SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self._fillers.append(filler)
        await asyncio.sleep(0.2)  # the client sees its pooled connections closed

    def resume(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._fillers.clear()
        self.start()

    async def close(self) -> None:
        await self._stop_accepting()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for filler in self._fillers:
            filler.close()
        self.listener.close()


@pytest.fixture
async def relay(fake_api: FakeBotApi) -> AsyncIterator[StallingRelay]:
    relay = StallingRelay(fake_api.port)
    relay.start()
    try:
        yield relay
    finally:
        await relay.close()


# ------------------------------------------------------------------ end to end


async def test_no_secret_reaches_the_log_when_telegram_stops_answering_during_a_press(
    fake_api: FakeBotApi,
    relay: StallingRelay,
    rules: ContestRules,
    clock: ManualClock,
    seeded: AsyncEngine,
    database_url: str,
    log_to_string: Configure,
) -> None:
    """The bot in webhook mode, every library at DEBUG (raw payloads on: the hardest case).
    Telegram stops accepting connections just before a press: answering it times out while
    connecting, and aiohttp's ConnectionTimeoutError names the whole URL, token included."""
    out = log_to_string("DEBUG", raw_payloads=True)
    port = free_port()
    settings = Settings(
        _env_file=None,
        bot_token=fake_api.token,
        bot_api_url=f"http://127.0.0.1:{relay.port}/bot",
        database_url="sqlite://",  # unused: the engine is given
        webhook_url=f"http://127.0.0.1:{port}{PATH}",
        webhook_secret=SECRET,
        webhook_port=port,
    )
    app = build_application(
        settings, rules, clock=clock, engine=pg_engine(database_url), polling=False
    )
    server = await start_webhook(app, settings)
    try:
        user = fake_api.user(3001, first_name="An")
        await say(user, "/dangky", "Tôi đồng ý")
        await relay.stall()
        await user.press("✅ Tôi đồng ý")
        await wait_for_text(out, "ConnectionTimeoutError", timeout=30)
        relay.resume()
    finally:
        await stop_webhook(server)
    log = out.getvalue()
    assert "TimedOut" in log
    assert "Traceback (most recent call last)" in log
    assert f"/bot{MASK}/" in log  # the URL is still there, without its token
    assert "Set Bot API URL" in log  # python-telegram-bot's DEBUG line, redacted
    assert "secret_token" in log  # setWebhook's parameters, logged at DEBUG, redacted
    for secret in (fake_api.token, SECRET, PATH, f"http://127.0.0.1:{port}{PATH}"):
        assert secret not in log


async def test_no_personal_data_in_the_debug_log(
    fake_api: FakeBotApi,
    rules: ContestRules,
    clock: ManualClock,
    seeded: AsyncEngine,
    database_url: str,
    log_to_string: Configure,
) -> None:
    """``--log-level DEBUG``: a registration (the phone shared as a contact, the birth date
    typed) and the profile that shows them leave neither in the log."""
    out = log_to_string("DEBUG")
    runner = BotRunner(fake_api, rules, clock, lambda: pg_engine(database_url))
    await runner.start()
    try:
        user = fake_api.user(3002, first_name="Bình")
        await register_civil_servant(user, phone="84912345678", birth="25/03/1990")
        profile = await say(user, "/hoso", "HỒ SƠ")
        assert "25/03/1990" in profile.text  # the data did go through the bot
    finally:
        await runner.stop()
    log = out.getvalue()
    assert "registered" in log  # our own lines are there
    assert "Processing update" not in log  # python-telegram-bot's payload lines are not
    for form in ("0912345678", "+84912345678", "84912345678", "912345678", "25/03/1990"):
        assert form not in log, form


# ------------------------------------------------------------------ the pieces


def test_library_loggers_stay_at_info_unless_raw_payloads_are_asked_for(
    log_to_string: Configure,
) -> None:
    library = ("telegram.ext.Application", "telegram.Bot", "httpx", "aiohttp.client", "asyncio")
    own = ("bot.webhook", "handlers.common", "contest.services", "scheduler.deadlines")

    log_to_string("DEBUG")
    for name in library:
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    for name in own:
        assert logging.getLogger(name).isEnabledFor(logging.DEBUG), name

    log_to_string("WARNING")
    for name in (*library, *own):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name

    log_to_string("DEBUG", raw_payloads=True)
    for name in ("telegram.ext.Application", "telegram.Bot", *own):
        assert logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    assert len([h for h in logging.getLogger().handlers if h.formatter is not None]) >= 1


def test_secrets_are_masked_in_messages_arguments_and_tracebacks(
    log_to_string: Configure,
) -> None:
    out = log_to_string("DEBUG")
    secret = "registered-Secret_0123"
    register_secret(secret)
    register_secret("short")  # too short to mask safely: ignored
    log = logging.getLogger("bot.test")
    # Another handler formats the record first and caches its traceback text unmasked.
    plain = logging.StreamHandler(io.StringIO())
    log.addHandler(plain)
    try:
        try:
            raise ConnectionError(f"Connection timeout to host http://x/bot{secret}/getMe")
        except ConnectionError:
            log.exception("failed with %s", secret)
        log.info("token-shaped: %s, url-encoded: %s", TOKEN_SHAPED, secret.replace("_", "%5F"))
        log.warning("stack", stack_info=True)  # the stack text goes through the mask too
        log.info("a short line")
    finally:
        log.removeHandler(plain)
    text = out.getvalue()
    assert secret not in text and TOKEN_SHAPED not in text
    assert "Traceback (most recent call last)" in text
    assert f"http://x/bot{MASK}/getMe" in text
    assert f"failed with {MASK}" in text
    assert "Stack (most recent call last)" in text
    assert "a short line" in text


def test_phone_numbers_and_birth_dates_are_masked_unless_raw_payloads(
    log_to_string: Configure,
) -> None:
    lines = [
        "contact 0912345678 shared",
        "contact +84912345678 shared",
        "contact 84987654321 shared",
        "landline 02438123456",
        "{'phone_number': '+1 555 0100'}",
        'Contact(phone_number="5550100", first_name="An")',
        '{"phone_number":"12345"}',
        "born 25/03/1990, or 1/1/1995",
    ]
    kept = "update 900101 at 2024-08-05 09:00:00 attempt 42 chat 5912345678"
    out = log_to_string("DEBUG")
    log = logging.getLogger("bot.test")
    for line in [*lines, kept]:
        log.info(line)
    text = out.getvalue()
    for hidden in (
        "0912345678",
        "84912345678",
        "84987654321",
        "02438123456",
        "555 0100",
        "5550100",
        '12345"',
        "25/03/1990",
        "1/1/1995",
    ):
        assert hidden not in text, hidden
    assert kept in text

    raw = log_to_string("DEBUG", raw_payloads=True)
    register_secret(SECRET)
    log.info("contact 0912345678, secret %s", SECRET)
    assert f"contact 0912345678, secret {MASK}" in raw.getvalue()


def test_an_uncaught_exception_is_printed_masked(log_to_string: Configure) -> None:
    out = log_to_string("INFO")
    register_secret(SECRET)
    try:
        raise RuntimeError(f"at http://api/bot{TOKEN_SHAPED}/x with {SECRET}")
    except RuntimeError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    text = out.getvalue()
    assert "RuntimeError" in text and "Traceback" in text
    assert SECRET not in text and TOKEN_SHAPED not in text


def test_settings_register_every_secret(log_to_string: Configure) -> None:
    out = log_to_string("DEBUG")
    settings = Settings(
        _env_file=None,
        bot_token="123456:settings-token-value",
        database_url="postgresql://contest:db-Passw0rd-x@db.example/contest",
        webhook_url="https://bot.example.vn/tg/route-Zq81kd",
        webhook_secret="hook_secret_value",
    )
    register_settings_secrets(settings)
    log = logging.getLogger("bot.test")
    log.info(
        "%s %s %s %s",
        "123456:settings-token-value",
        "db-Passw0rd-x",
        "https://bot.example.vn/tg/route-Zq81kd",
        "hook_secret_value",
    )
    log.info("a request to /tg/route-Zq81kd")
    text = out.getvalue()
    for secret in ("settings-token-value", "db-Passw0rd-x", "route-Zq81kd", "hook_secret_value"):
        assert secret not in text, secret


async def test_no_personal_data_or_zalo_token_in_the_debug_log_of_a_zalo_registration(
    rules: ContestRules,
    clock: ManualClock,
    tmp_path: Path,
    log_to_string: Configure,
) -> None:
    """``--log-level DEBUG`` on the Zalo channel: the typed phone number and birth date of
    a registration and the Zalo token (in every request's path) stay out of the log."""
    from fakes.zalo import FakeZaloApi
    from tests.test_zalo_e2e import ZaloRunner, register_zalo, say, seeded_file

    out = log_to_string("DEBUG")
    url = await seeded_file(tmp_path, rules, clock)
    async with FakeZaloApi() as zalo_api:
        runner = ZaloRunner(zalo_api, rules, clock, url)
        await runner.start()
        try:
            user = zalo_api.user("z-log", "Cường")
            await register_zalo(user, phone="0931234567", birth="12/12/1988")
            profile = await say(user, "hoso", "HỒ SƠ")
            assert "12/12/1988" in profile.text  # the data did go through the bot
        finally:
            await runner.stop()
        token = zalo_api.token
    log = out.getvalue()
    assert "registered" in log  # our own lines are there
    for form in ("0931234567", "+84931234567", "84931234567", "931234567", "12/12/1988", token):
        assert form not in log, form
