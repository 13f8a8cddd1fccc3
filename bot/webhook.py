"""Webhook mode: a small aiohttp server that feeds python-telegram-bot's update queue.

This follows python-telegram-bot's ``examples/customwebhookbot`` pattern: the application is
built with ``.updater(None)``, and our own web server turns each POSTed update into
``Update.de_json(data, app.bot)`` on ``application.update_queue``. Routes:

* ``POST <path of CONTEST_WEBHOOK_URL>``: Telegram's deliveries. The
  ``X-Telegram-Bot-Api-Secret-Token`` header must equal CONTEST_WEBHOOK_SECRET (403 otherwise),
  the body must be a JSON update (400 otherwise). The update is queued and answered 200 at
  once; processing happens afterwards, so Telegram never waits for a handler.
* ``GET /healthz``: ``SELECT 1`` on the bot's database, 200 ``{"status":"ok"}`` or
  503 ``{"status":"error"}`` (for a load balancer or an orchestrator).
* anything else: 404.

Lifecycle (:func:`start_webhook` / :func:`stop_webhook`, or :func:`serve` until SIGINT/SIGTERM):
initialize the application and run ``post_init`` (migrations, command menu, timers), open the
web server, ``setWebhook``, start the application. Stopping closes the web server *first*, so
no update is accepted (answered 200) that the stopping application would never process, then
stops the application. The webhook is not deleted on stop: another process may still serve it.

Neither the bot token nor the secret is ever logged; the access log is off because the URL
path is a secret too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import signal
import sys
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import text
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application
from yarl import URL

from bot.app import close_requests, runtime, stop
from bot.settings import Settings

__all__ = [
    "ALLOWED_UPDATES",
    "SECRET_HEADER",
    "RecentUpdateIds",
    "WebhookConfig",
    "WebhookConfigError",
    "WebhookServer",
    "WebhookStartError",
    "check_config",
    "make_web_app",
    "run_webhook",
    "serve",
    "start_webhook",
    "stop_webhook",
]

log = logging.getLogger(__name__)

AnyApplication = Application[Any, Any, Any, Any, Any, Any]

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "callback_query"]
HEALTH_PATH = "/healthz"
# Telegram's rule for secret_token: 1-256 characters, only A-Z, a-z, 0-9, _ and -.
SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# Simultaneous HTTPS connections Telegram may open (1-100, Telegram's default is 40). Each
# delivery is answered as soon as it is queued, so a few connections carry a large load.
MAX_CONNECTIONS = 40
HEALTH_TIMEOUT = 2.0  # seconds for SELECT 1, connecting included
RECENT_UPDATES = 10_000
EXIT_USAGE = 2
EXIT_FAILED = 1


class WebhookConfigError(Exception):
    """The webhook settings are missing or invalid; the message (Vietnamese) says which."""


class WebhookStartError(Exception):
    """The port could not be opened or Telegram refused the webhook (message in Vietnamese)."""


@dataclass(frozen=True)
class WebhookConfig:
    """Validated webhook settings."""

    url: str
    secret: str
    path: str  # the URL's path, served locally


def check_config(settings: Settings) -> WebhookConfig:
    """Validate CONTEST_WEBHOOK_URL and CONTEST_WEBHOOK_SECRET, or raise WebhookConfigError."""
    raw_url = (settings.webhook_url or "").strip()
    if not raw_url:
        raise WebhookConfigError(
            "Chưa có địa chỉ webhook: hãy đặt biến môi trường CONTEST_WEBHOOK_URL "
            "(ví dụ https://bot.example.org/tg/<chuỗi ngẫu nhiên>)."
        )
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    if not secret:
        raise WebhookConfigError(
            "Chưa có khóa bí mật của webhook: hãy đặt biến môi trường CONTEST_WEBHOOK_SECRET "
            "(1–256 ký tự, chỉ gồm A-Z, a-z, 0-9, _ và -)."
        )
    if not SECRET_PATTERN.fullmatch(secret):
        raise WebhookConfigError(
            "CONTEST_WEBHOOK_SECRET không hợp lệ: Telegram chỉ chấp nhận 1–256 ký tự, "
            "chỉ gồm chữ cái không dấu A-Z, a-z, chữ số 0-9, dấu gạch dưới _ và gạch ngang -."
        )
    try:
        url = URL(raw_url)
    except ValueError:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise WebhookConfigError(
            "CONTEST_WEBHOOK_URL không hợp lệ: cần một địa chỉ đầy đủ dạng "
            "https://tên-miền/đường-dẫn."
        )
    path = url.path or "/"
    if path == HEALTH_PATH:
        raise WebhookConfigError(
            f"CONTEST_WEBHOOK_URL không được dùng đường dẫn {HEALTH_PATH} "
            "(dành cho kiểm tra tình trạng); hãy chọn một đường dẫn ngẫu nhiên."
        )
    return WebhookConfig(url=raw_url, secret=secret, path=path)


class RecentUpdateIds:
    """The most recent ``update_id`` values seen, bounded (least recently seen goes first).

    Telegram redelivers an update when it did not get our 200 in time. Dropping an id seen a
    moment ago only saves work: with several bot processes behind a load balancer a
    redelivery may reach another process, and there the database's compare-and-set
    (``UPDATE ... WHERE status = ...``, unique keys) is what keeps every answer and every
    state change single.
    """

    def __init__(self, capacity: int = RECENT_UPDATES) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._ids: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def seen(self, update_id: int) -> bool:
        """Record ``update_id``; True if it was already among the recent ones."""
        if update_id in self._ids:
            self._ids.move_to_end(update_id)
            return True
        self._ids[update_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return False


class _Routes:
    """The request handlers, bound to one application."""

    def __init__(
        self,
        application: AnyApplication,
        secret: str,
        *,
        health_timeout: float,
        recent_updates: int,
    ) -> None:
        self.application = application
        self._secret = secret.encode()
        self.health_timeout = health_timeout
        self.recent = RecentUpdateIds(recent_updates)

    async def update(self, request: web.Request) -> web.StreamResponse:
        """Telegram's delivery: check the secret, queue the update, answer at once."""
        if request.method != "POST":
            raise web.HTTPNotFound
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, self._secret):
            log.warning("webhook request refused: wrong or missing secret token")
            raise web.HTTPForbidden
        try:
            data = json.loads(await request.read())
        except ValueError:
            raise web.HTTPBadRequest(text="invalid JSON") from None
        update_id = data.get("update_id") if isinstance(data, dict) else None
        if type(update_id) is not int:
            raise web.HTTPBadRequest(text="not an update")
        try:
            update = Update.de_json(data, self.application.bot)
        except (KeyError, TypeError, ValueError):
            raise web.HTTPBadRequest(text="not an update") from None
        if self.recent.seen(update_id):  # only updates that were queued are recorded
            log.info("update %d delivered again: dropped", update_id)
            return web.Response()
        await self.application.update_queue.put(update)
        return web.Response()

    async def health(self, request: web.Request) -> web.StreamResponse:
        """Health: the database answers ``SELECT 1`` within the timeout."""
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPNotFound
        engine = runtime(self.application).engine
        try:
            async with asyncio.timeout(self.health_timeout), engine.connect() as conn:
                # A reading transaction: SQLite must not take the write lock for this.
                await conn.execution_options(contest_write=False)
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # any failure is "not healthy"; no detail leaves the process
            log.warning("health check failed: %s", type(exc).__name__)
            return web.json_response({"status": "error"}, status=503)
        return web.json_response({"status": "ok"})


def make_web_app(
    application: AnyApplication,
    settings: Settings,
    *,
    secret_path: str,
    health_timeout: float = HEALTH_TIMEOUT,
    recent_updates: int = RECENT_UPDATES,
) -> web.Application:
    """The web server: ``POST secret_path`` (updates), ``GET /healthz``, 404 for the rest."""
    if settings.webhook_secret is None or not settings.webhook_secret.get_secret_value():
        raise WebhookConfigError("CONTEST_WEBHOOK_SECRET is required")
    if not secret_path.startswith("/") or secret_path == HEALTH_PATH:
        raise ValueError("secret_path must be an absolute path other than /healthz")
    routes = _Routes(
        application,
        settings.webhook_secret.get_secret_value(),
        health_timeout=health_timeout,
        recent_updates=recent_updates,
    )
    web_app = web.Application()
    web_app.router.add_route("*", secret_path, routes.update)
    web_app.router.add_route("*", HEALTH_PATH, routes.health)
    return web_app


@dataclass
class WebhookServer:
    """What :func:`start_webhook` started; give it to :func:`stop_webhook`."""

    application: AnyApplication
    runner: web.AppRunner
    config: WebhookConfig
    host: str
    port: int  # the port actually bound (useful when CONTEST_WEBHOOK_PORT is 0)

    @property
    def local_url(self) -> str:
        """The local address of the update route (tests, load balancer configuration)."""
        return f"http://{self.host}:{self.port}{self.config.path}"


class _Redact(logging.Filter):
    """Replace secrets in log records (PTB logs request parameters at DEBUG level)."""

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg = message
            record.args = None
        return True


@contextlib.contextmanager
def _secrets_redacted(*secrets: str) -> Iterator[None]:
    loggers = [logging.getLogger("telegram.Bot"), logging.getLogger("telegram.ext.ExtBot")]
    redact = _Redact(*secrets)
    for logger in loggers:
        logger.addFilter(redact)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(redact)


async def start_webhook(
    application: AnyApplication,
    settings: Settings,
    *,
    health_timeout: float = HEALTH_TIMEOUT,
) -> WebhookServer:
    """Initialize the application (and ``post_init``), open the web server, register the
    webhook with Telegram, start the application. Raises WebhookConfigError first if the
    settings are incomplete; on any later failure, what was started is stopped again."""
    config = check_config(settings)
    try:
        await application.initialize()  # getMe: the token and the Bot API are checked here
    except BaseException:
        await close_requests(application)  # PTB leaves half-initialised parts open
        raise
    runner: web.AppRunner | None = None
    try:
        if application.post_init is not None:
            await application.post_init(application)
        web_app = make_web_app(
            application, settings, secret_path=config.path, health_timeout=health_timeout
        )
        runner = web.AppRunner(web_app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.webhook_listen, settings.webhook_port)
        try:
            await site.start()
        except OSError as exc:
            raise WebhookStartError(
                f"Không mở được cổng {settings.webhook_listen}:{settings.webhook_port} "
                f"cho webhook (CONTEST_WEBHOOK_LISTEN, CONTEST_WEBHOOK_PORT): "
                f"{exc.strerror or exc}"
            ) from exc
        port = int(runner.addresses[0][1]) if runner.addresses else settings.webhook_port
        try:
            # The secret, and the URL's path (it is a secret of sorts too).
            with _secrets_redacted(config.secret, config.path.strip("/")):
                await application.bot.set_webhook(
                    url=config.url,
                    secret_token=config.secret,
                    allowed_updates=ALLOWED_UPDATES,
                    drop_pending_updates=False,
                    max_connections=MAX_CONNECTIONS,
                )
        except TelegramError as exc:
            raise WebhookStartError(
                f"Telegram không nhận webhook (CONTEST_WEBHOOK_URL): {exc.message}"
            ) from exc
        await application.start()
    except BaseException:
        if runner is not None:
            await runner.cleanup()
        try:
            await stop(application)
        except Exception:  # keep the original error
            log.exception("could not stop the application cleanly")
        raise
    log.info(
        "webhook serving on %s:%d for %s",
        settings.webhook_listen,
        port,
        URL(config.url).host,  # not the path: it is part of the secret
    )
    return WebhookServer(application, runner, config, settings.webhook_listen, port)


async def stop_webhook(server: WebhookServer) -> None:
    """Close the web server (no new update is accepted), then stop the application: the
    updates already queued are processed first. The webhook stays registered."""
    await server.runner.cleanup()
    await stop(server.application)


async def serve(
    application: AnyApplication,
    settings: Settings,
    *,
    stop_event: asyncio.Event | None = None,
) -> None:
    """Run the webhook until SIGINT or SIGTERM (or until ``stop_event`` is set)."""
    stopping = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stopping.set)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
            continue
        installed.append(sig)
    try:
        server = await start_webhook(application, settings)
        try:
            await stopping.wait()
            log.info("stopping the webhook server")
        finally:
            await stop_webhook(server)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def run_webhook(application: AnyApplication, settings: Settings) -> int:
    """``contest-bot run --webhook``: serve until stopped; the process exit code."""
    try:
        check_config(settings)
    except WebhookConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(serve(application, settings))
    except WebhookStartError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILED
    return 0
