"""Assembly of the Zalo channel: alone in a process (``ZaloProcess``: the same deadline
sweeps, outbox sender and campaign as the Telegram process, on timers of their own), or
beside Telegram in one process (``ZaloParts``, built and started by ``bot.app``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine
from yarl import URL

from bot.logs import register_settings_secrets
from bot.settings import Settings
from contest.clock import Clock, SystemClock
from contest.model import Account, Channel
from contest.rules import ContestRules
from contest.services import ContestService
from contest.ui.router import Ui
from scheduler.campaign import CampaignScheduler
from scheduler.deadlines import DeadlineScheduler, process_name, scheduler_lease
from scheduler.lease import LeaseGuard
from scheduler.throttle import SendThrottle
from scheduler.timers import TimerJobQueue, Timers
from storage.db import create_engine
from storage.export import WorkerExporter
from storage.fixes import read_upload
from storage.presses import DriverPressStores
from storage.schema import migrate
from storage.uow import SqlUnitOfWorkFactory
from zalo.api import ZaloApi
from zalo.chat import ZaloChat
from zalo.dispatch import PerChat, Poller, webhook_handler
from zalo.notify import ZaloNotifier

log = logging.getLogger(__name__)

REPLY_POOL = 64
BULK_POOL = 32
# A stop waits for the poll in flight (see zalo.dispatch.Poller.stop): keep it short.
MAX_POLL_SECONDS = 10


class ZaloConfigError(Exception):
    """A Zalo setting is missing or invalid (the message, in Vietnamese, says which)."""


def zalo_admins(settings: Settings) -> frozenset[Account]:
    return frozenset(Account.zalo(user) for user in settings.zalo_admin_ids)


def zalo_token(settings: Settings) -> str:
    token = settings.zalo_token.get_secret_value().strip() if settings.zalo_token else ""
    if not token:
        raise ZaloConfigError(
            "Chưa có token của bot Zalo: hãy đặt biến môi trường CONTEST_ZALO_TOKEN (token do "
            "Zalo Bot Platform cấp)."
        )
    return token


@dataclass(frozen=True)
class ZaloWebhook:
    url: str
    path: str
    secret: str


def zalo_webhook(settings: Settings) -> ZaloWebhook:
    url = (settings.zalo_webhook_url or "").strip()
    secret = settings.zalo_webhook_secret.get_secret_value() if settings.zalo_webhook_secret else ""
    if not url.startswith("https://") and not url.startswith("http://127.0.0.1"):
        raise ZaloConfigError(
            "Chưa có địa chỉ webhook Zalo hợp lệ: hãy đặt CONTEST_ZALO_WEBHOOK_URL (một địa chỉ "
            "https://, ví dụ https://bot.example.org/zalo/<chuỗi ngẫu nhiên>)."
        )
    if not 8 <= len(secret) <= 256:
        raise ZaloConfigError(
            "Hãy đặt CONTEST_ZALO_WEBHOOK_SECRET: một chuỗi bí mật dài 8 đến 256 ký tự."
        )
    path = URL(url).path or "/"
    if path in ("/", "/healthz"):
        raise ZaloConfigError(
            "CONTEST_ZALO_WEBHOOK_URL cần có đường dẫn riêng, ví dụ /zalo/<chuỗi ngẫu nhiên>."
        )
    return ZaloWebhook(url, path, secret)


class ZaloParts:
    """The Zalo channel over a contest service: its API clients (replies and bulk sends on
    separate sessions), the conversation, the update runner, the poller or webhook route,
    and the notifier for the outbox."""

    def __init__(
        self,
        settings: Settings,
        service: ContestService,
        ui: Ui,
        rules: ContestRules,
        clock: Clock,
        *,
        polling: bool,
    ) -> None:
        token = zalo_token(settings)
        self.webhook = None if polling else zalo_webhook(settings)
        self.api = ZaloApi(token, settings.zalo_api_url, pool_size=REPLY_POOL)
        self.bulk_api = ZaloApi(token, settings.zalo_api_url, pool_size=BULK_POOL)
        self.poll_api = ZaloApi(token, settings.zalo_api_url, pool_size=1)
        self.chat = ZaloChat(service, ui, self.api, rules, clock)
        self.runner = PerChat(self.chat.handle)
        poll_timeout = min(settings.poll_timeout, MAX_POLL_SECONDS)
        self.poller = Poller(self.poll_api, self.runner, poll_timeout) if polling else None
        throttle = SendThrottle(settings.zalo_send_rate, settings.zalo_chat_send_interval)
        self.notifier = ZaloNotifier(self.bulk_api, throttle, service)

    def route(self) -> tuple[str, Any]:
        """The webhook's (path, handler), to serve on a web server."""
        assert self.webhook is not None
        return self.webhook.path, webhook_handler(self.runner, self.webhook.secret)

    async def start(self) -> None:
        """Check the token (getMe); then poll, or register the webhook (served already)."""
        me = await self.api.get_me()
        log.info("Zalo bot %s ready", me.get("account_name") or "?")
        if self.poller is not None:
            await self.api.delete_webhook()  # getUpdates is refused while a webhook is set
            self.poller.start()
        else:
            assert self.webhook is not None
            await self.api.set_webhook(self.webhook.url, self.webhook.secret)

    async def stop(self) -> None:
        if self.poller is not None:
            await self.poller.stop()
        else:
            await self.runner.join()
        for api in (self.api, self.bulk_api, self.poll_api):
            await api.close()


class ZaloProcess:
    """A process serving Zalo alone: storage, use cases, the Zalo channel, and the timers
    (deadlines, warnings, the outbox, the campaign) on APScheduler without Telegram."""

    def __init__(
        self,
        settings: Settings,
        rules: ContestRules,
        *,
        clock: Clock | None = None,
        engine: AsyncEngine | None = None,
        polling: bool = True,
    ) -> None:
        register_settings_secrets(settings)
        self.settings = settings
        self.clock = clock or SystemClock()
        self.engine = engine or create_engine(
            settings.database_url, pg_pool_size=settings.db_pool_size
        )
        self.presses = (
            DriverPressStores(self.engine) if DriverPressStores.supports(self.engine) else None
        )
        admins = zalo_admins(settings) | frozenset(
            Account.telegram(user) for user in settings.admin_ids
        )
        self.service = ContestService(
            SqlUnitOfWorkFactory(self.engine),
            self.clock,
            rules,
            presses=self.presses,
            admins=admins,
            upload_reader=read_upload,
        )
        self.service.exports.exporter = WorkerExporter(self.engine)
        self.ui = Ui(self.service)
        self.zalo = ZaloParts(settings, self.service, self.ui, rules, self.clock, polling=polling)
        self.timers = Timers()
        jobs = cast(Any, TimerJobQueue(self.timers))
        self.lease = LeaseGuard(
            self.engine, scheduler_lease([Channel.ZALO]), process_name(), settings.lease_seconds
        )
        self.deadlines = DeadlineScheduler(
            self.service,
            [self.zalo.notifier],
            jobs,
            self.lease,
            sweep_seconds=settings.sweep_seconds,
        )
        self.service.timer = self.deadlines
        self.campaign = CampaignScheduler(
            self.service,
            jobs,
            self.lease,
            interval=settings.sweep_seconds,
            wake_sender=self.deadlines.kick,
        )
        self.web: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        await migrate(self.engine)
        try:
            if self.zalo.webhook is not None:
                await self._serve_webhook()
            await self.zalo.start()
        except BaseException:
            await self.stop()
            raise
        self.timers.start()
        held, _ = await self.lease.renew()
        if held:
            await self.deadlines.rearm()
        self.deadlines.start()
        self.campaign.start()
        log.info("Zalo channel running (%s)", "webhook" if self.zalo.webhook else "long polling")

    async def _serve_webhook(self) -> None:
        path, handler = self.zalo.route()
        app = web.Application(client_max_size=256 * 1024)
        app.router.add_route("*", path, handler)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.webhook_listen, self.settings.webhook_port)
        await site.start()
        self.web = runner
        self.port = int(runner.addresses[0][1]) if runner.addresses else None

    async def stop(self) -> None:
        if self.web is not None:
            await self.web.cleanup()  # no update accepted that would not be handled
            self.web = None
        await self.zalo.stop()
        await self.deadlines.stop()
        self.timers.shutdown()
        try:
            await self.lease.release()
        except Exception as exc:  # the database is going away too
            log.info("could not release the lease: %s", type(exc).__name__)
        if self.presses is not None:
            self.presses.close()
        await self.engine.dispose()
