"""Assembly: the one place where settings, storage, use cases, handlers and timers meet."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Bot
from telegram.ext import Application, ApplicationBuilder

from bot.logs import register_settings_secrets
from bot.processor import PerChatUpdateProcessor
from bot.request import SharedSession, build_request
from bot.settings import Settings
from bot.zalo import ZaloParts, zalo_admins
from contest.clock import Clock, SystemClock
from contest.model import Account, Channel
from contest.rules import ContestRules
from contest.services import ContestService
from contest.ui.router import Ui
from handlers import console, exam, info, linking, reachable, registration, reminders
from handlers.common import DEPS_KEY, Deps, on_error
from handlers.console import CONTESTANT_COMMANDS, UI_KEY, refresh_menus
from handlers.notify import TelegramNotifier
from scheduler.campaign import CampaignScheduler
from scheduler.deadlines import (
    DELIVERY_CONCURRENCY,
    DeadlineScheduler,
    process_name,
    scheduler_lease,
)
from scheduler.lease import LeaseGuard
from scheduler.throttle import SendThrottle
from storage.db import create_engine
from storage.export import WorkerExporter
from storage.fixes import read_upload
from storage.presses import DriverPressStores
from storage.prize_export import sheet_xlsx
from storage.schema import migrate
from storage.uow import SqlUnitOfWorkFactory

log = logging.getLogger(__name__)

RUNTIME_KEY = "contest_runtime"
ALLOWED_UPDATES = ["message", "callback_query"]
GC_THRESHOLD = 20_000  # allocations between young-generation collections (CPython: 700)


class MissingToken(Exception):
    """CONTEST_BOT_TOKEN is not set."""


@dataclass
class Runtime:
    """What the application owns besides PTB's own parts."""

    engine: AsyncEngine
    service: ContestService
    deadlines: DeadlineScheduler
    bulk_bot: Bot
    lease: LeaseGuard
    presses: DriverPressStores | None
    campaign: CampaignScheduler
    zalo: Any = None  # bot.zalo.ZaloParts when Zalo is served by this process too


def file_url(api_url: str) -> str:
    """Telegram's file URL for a Bot API base URL (``…/bot`` -> ``…/file/bot``)."""
    if api_url.endswith("/bot"):
        return api_url[: -len("bot")] + "file/bot"
    return api_url.rstrip("/") + "/file/bot"


def build_application(
    settings: Settings,
    rules: ContestRules,
    *,
    clock: Clock | None = None,
    engine: AsyncEngine | None = None,
    polling: bool = True,
    zalo: bool = False,
) -> Application[Any, Any, Any, Any, Any, Any]:
    """Build the bot (with ``zalo``, the Zalo channel too, on the same use cases and
    schedulers). Nothing connects here: the database is opened in ``post_init``."""
    if settings.bot_token is None or not settings.bot_token.get_secret_value().strip():
        raise MissingToken
    register_settings_secrets(settings)  # masked in every log line (bot.logs)
    # Every request object of the bot (updates, getUpdates, bulk sends) sends through one
    # aiohttp session; each keeps its own pool, so bulk sends never hold up an answer.
    http = SharedSession()
    builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = (
        Application.builder()
        .token(settings.bot_token.get_secret_value().strip())
        .base_url(settings.bot_api_url)
        .base_file_url(file_url(settings.bot_api_url))
        .request(build_request(settings.http_backend, pool_size=128, shared=http))
        .get_updates_request(build_request(settings.http_backend, pool_size=1, shared=http))
        .concurrent_updates(PerChatUpdateProcessor(256))
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
    )
    if not polling:
        builder = builder.updater(None)
    app = builder.build()

    clock = clock or SystemClock()
    engine = engine or create_engine(settings.database_url, pg_pool_size=settings.db_pool_size)
    presses = DriverPressStores(engine) if DriverPressStores.supports(engine) else None
    admins = frozenset(Account.telegram(user) for user in settings.admin_ids)
    admins |= zalo_admins(settings)
    service = ContestService(
        SqlUnitOfWorkFactory(engine),
        clock,
        rules,
        presses=presses,
        admins=admins,
        upload_reader=read_upload,
    )
    assert app.job_queue is not None, "python-telegram-bot[job-queue] is required"
    # Messages the bot sends on its own use a Bot of their own: own pool, own pace.
    bulk_bot = Bot(
        app.bot.token,
        base_url=settings.bot_api_url,
        base_file_url=file_url(settings.bot_api_url),
        request=build_request(settings.http_backend, pool_size=DELIVERY_CONCURRENCY, shared=http),
    )
    throttle = SendThrottle(settings.send_rate, settings.chat_send_interval)
    channels = [Channel.TELEGRAM, Channel.ZALO] if zalo else [Channel.TELEGRAM]
    lease = LeaseGuard(engine, scheduler_lease(channels), process_name(), settings.lease_seconds)
    ui = Ui(service)
    zalo_parts = ZaloParts(settings, service, ui, rules, clock, polling=polling) if zalo else None
    deadlines = DeadlineScheduler(
        service,
        [TelegramNotifier(bulk_bot, throttle)] + ([zalo_parts.notifier] if zalo_parts else []),
        app.job_queue,
        lease,
        sweep_seconds=settings.sweep_seconds,
    )
    service.timer = deadlines
    service.exports.exporter = WorkerExporter(engine)  # the workbook: in a worker process
    service.prizes.sheet_writer = sheet_xlsx  # the prizes' small workbook
    campaign = CampaignScheduler(
        service,
        app.job_queue,
        lease,
        interval=settings.sweep_seconds,
        wake_sender=deadlines.kick,
    )
    app.bot_data[DEPS_KEY] = Deps(service, rules, clock, settings.admin_ids)
    app.bot_data[RUNTIME_KEY] = Runtime(
        engine, service, deadlines, bulk_bot, lease, presses, campaign, zalo_parts
    )

    app.bot_data[UI_KEY] = ui
    for module in (console, info, registration, exam, reminders, linking):
        for handler in module.handlers():
            app.add_handler(handler)
    for handler in info.fallbacks():
        app.add_handler(handler)
    for handler in reachable.handlers():  # every update, before the others
        app.add_handler(handler, group=reachable.GROUP)
    app.add_error_handler(on_error)
    return app


def runtime(app: Application[Any, Any, Any, Any, Any, Any]) -> Runtime:
    value = app.bot_data[RUNTIME_KEY]
    assert isinstance(value, Runtime)
    return value


async def _post_init(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    rt = runtime(app)
    await migrate(rt.engine)
    await rt.bulk_bot.initialize()
    try:
        await app.bot.set_my_commands(CONTESTANT_COMMANDS)
        await refresh_menus(app)  # organisers' and focal persons' chats: the console too
    except Exception as exc:  # not worth refusing to start over a menu
        log.warning("could not set the command menu: %s", type(exc).__name__)
    held, _ = await rt.lease.renew()
    if held:
        await rt.deadlines.rearm()
    rt.deadlines.start()
    rt.campaign.start()
    if rt.zalo is not None:
        await rt.zalo.start()


async def _post_shutdown(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    rt = runtime(app)
    if rt.zalo is not None:
        await rt.zalo.stop()
    await rt.deadlines.stop()
    try:
        await rt.lease.release()
    finally:
        await rt.bulk_bot.shutdown()
        if rt.presses is not None:
            rt.presses.close()
        await rt.engine.dispose()


async def clock_moved(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """The injected clock jumped forward (a rehearsal moves it): the deadline timers wait
    wall-clock delays worked out from the old time, so they are armed again from the
    database, and the deadline sweep (overdue attempts, warnings, results) and the campaign
    (reminders due) run at once instead of at their next tick."""
    rt = runtime(app)
    await rt.deadlines.sweep()  # renews the lease; closes what is overdue, sends results
    if rt.lease.holding:
        await rt.deadlines.rearm()
    await rt.campaign.tick()


def tune_gc() -> None:
    """Every press allocates a few hundred short-lived objects (python-telegram-bot's
    objects, rows): collect the youngest generation less often, and move what start-up
    built (modules, compiled statements) out of the collector's way for good."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


async def start(app: Application[Any, Any, Any, Any, Any, Any], *, poll_timeout: int = 30) -> None:
    """Start like ``run_polling`` does, but return (for tests, benchmarks, embedding)."""
    await app.initialize()
    if app.post_init is not None:
        await app.post_init(app)
    tune_gc()
    if app.updater is not None:
        await app.updater.start_polling(
            timeout=poll_timeout, poll_interval=0.0, allowed_updates=ALLOWED_UPDATES
        )
    await app.start()


async def close_requests(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Close the HTTP sessions after a start that failed half-way (PTB only shuts down
    what it finished initialising)."""
    rt = runtime(app)
    await rt.deadlines.stop()
    if rt.zalo is not None:
        await rt.zalo.stop()
    for request in (*app.bot._request, rt.bulk_bot.request):
        await request.shutdown()
    if rt.presses is not None:
        rt.presses.close()
    await rt.engine.dispose()


async def stop(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Stop what ``start`` started, in reverse order."""
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
    if app.post_stop is not None:
        await app.post_stop(app)
    await app.shutdown()
    if app.post_shutdown is not None:
        await app.post_shutdown(app)
