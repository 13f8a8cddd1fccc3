"""Webhook mode: a small aiohttp server that feeds python-telegram-bot's update queue.

This follows python-telegram-bot's ``examples/customwebhookbot`` pattern: the application is
built with ``.updater(None)``, and our own web server turns each POSTed update into
``Update.de_json(data, app.bot)`` on ``application.update_queue``. Routes:

* ``POST <path of CONTEST_WEBHOOK_URL>``: Telegram's deliveries. The
  ``X-Telegram-Bot-Api-Secret-Token`` header must equal CONTEST_WEBHOOK_SECRET (403 otherwise;
  refusals are logged at most once a minute, with their count), the body must be at most
  MAX_BODY_BYTES (413 otherwise) and a JSON update python-telegram-bot can build (400
  otherwise: malformed, too deeply nested or wrongly typed bodies alike, one short log line,
  never the body). The update is queued and answered 200 at once; processing happens
  afterwards, so Telegram never waits for a handler.
* ``GET /healthz``: ``SELECT 1`` on the bot's database, 200 ``{"status":"ok"}`` or
  503 ``{"status":"error"}`` (for a load balancer or an orchestrator).
* anything else: 404.

Lifecycle (:func:`start_webhook` / :func:`stop_webhook`, or :func:`serve` until SIGINT/SIGTERM):
initialize the application and run ``post_init`` (migrations, command menu, timers), open the
web server, ``setWebhook``, start the application. Stopping closes the web server *first*, so
no update is accepted (answered 200) that the stopping application would never process, then
stops the application. The webhook is not deleted on stop: another process may still serve it.

Neither the bot token nor the secret is ever logged (``bot.logs`` masks them, and the URL, in
every log line); the access log is off because the URL path is a secret too.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import text
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application
from yarl import URL

from bot.app import close_requests, runtime, stop
from bot.logs import register_settings_secrets
from bot.settings import Settings

__all__ = [
    "ALLOWED_UPDATES",
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
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
# An update is a few kilobytes (a 4,096-character text, its entities, a keyboard); the limit
# leaves a wide margin and keeps a hostile body from being read into memory.
MAX_BODY_BYTES = 1024 * 1024
# Telegram's updates nest about ten levels (message, reply_to_message, reply_markup …).
MAX_DEPTH = 64
REFUSAL_LOG_INTERVAL = 60.0  # seconds: at most one log line about refused requests
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


class RefusalLog:
    """Logs refused requests (wrong or missing secret) at most once per ``interval`` seconds.

    The first refusal is logged at once; the ones that follow within the interval are only
    counted, and the next line (or :meth:`flush`, at shutdown) gives their number. A flood
    of forged requests costs one WARNING line a minute, not one per request.
    """

    def __init__(
        self, interval: float = REFUSAL_LOG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.total = 0
        self._unreported = 0
        self._last: float | None = None

    def refused(self) -> None:
        self.total += 1
        self._unreported += 1
        now = self.clock()
        if self._last is None or now - self._last >= self.interval:
            self._report(now)

    def flush(self) -> None:
        if self._unreported:
            self._report(self.clock())

    def _report(self, now: float) -> None:
        log.warning(
            "webhook request refused: wrong or missing secret token "
            "(%d refused since the last report, %d in all; at most one report per %g s)",
            self._unreported,
            self.total,
            self.interval,
        )
        self._unreported = 0
        self._last = now


class _BadBody(Exception):
    """The body is not an update we can build; the message is a short reason (no data)."""


def _too_deep(data: object, limit: int) -> bool:
    """Whether ``data`` (parsed JSON) nests more than ``limit`` levels (no recursion)."""
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: list[object] = list(value.values())
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
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
        refusal_log_interval: float = REFUSAL_LOG_INTERVAL,
    ) -> None:
        self.application = application
        self._secret = secret.encode()
        self.health_timeout = health_timeout
        self.recent = RecentUpdateIds(recent_updates)
        self.refusals = RefusalLog(refusal_log_interval)

    async def update(self, request: web.Request) -> web.StreamResponse:
        """Telegram's delivery: check the secret, queue the update, answer at once."""
        if request.method != "POST":
            raise web.HTTPNotFound
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, self._secret):
            self.refusals.refused()
            raise web.HTTPForbidden
        body = await request.read()  # HTTPRequestEntityTooLarge (413) past client_max_size
        try:
            update_id, update = self._parse(body)
        except _BadBody as exc:
            log.warning("webhook body refused: %s (%d bytes)", exc, len(body))
            raise web.HTTPBadRequest(text="not an update") from None
        if self.recent.seen(update_id):  # only updates that were queued are recorded
            log.info("update %d delivered again: dropped", update_id)
            return web.Response()
        await self.application.update_queue.put(update)
        return web.Response()

    def _parse(self, body: bytes) -> tuple[int, Update]:
        """The update in ``body``, or _BadBody: a hostile body (malformed, nested thousands
        of levels deep, a string where an object belongs) is refused, never a server error."""
        try:
            data = json.loads(body)
        except RecursionError:
            raise _BadBody("JSON nested too deeply") from None
        except ValueError:
            raise _BadBody("not JSON") from None
        update_id = data.get("update_id") if isinstance(data, dict) else None
        if type(update_id) is not int:
            raise _BadBody("no integer update_id")
        if _too_deep(data, MAX_DEPTH):
            raise _BadBody(f"JSON nested more than {MAX_DEPTH} levels")
        try:
            update = Update.de_json(data, self.application.bot)
        except Exception as exc:  # any field of the wrong type or shape
            raise _BadBody(f"update {update_id} cannot be built ({type(exc).__name__})") from None
        return update_id, update

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
    max_body_bytes: int = MAX_BODY_BYTES,
    refusal_log_interval: float = REFUSAL_LOG_INTERVAL,
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
        refusal_log_interval=refusal_log_interval,
    )
    web_app = web.Application(client_max_size=max_body_bytes)
    web_app.router.add_route("*", secret_path, routes.update)
    web_app.router.add_route("*", HEALTH_PATH, routes.health)

    async def report_refusals(_: web.Application) -> None:
        routes.refusals.flush()

    web_app.on_cleanup.append(report_refusals)
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
    register_settings_secrets(settings)  # the token, the secret and the URL: masked in logs
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
        zalo = runtime(application).zalo
        if zalo is not None and zalo.webhook is not None:  # Zalo's deliveries, same server
            web_app.router.add_route("*", *zalo.route())
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
