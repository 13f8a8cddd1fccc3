"""Notices the bot sends on its own (results, warnings, broadcasts, reminders), on Telegram.

They go through their own Bot (own connection pool) and a send throttle, so a burst of
them never delays the answers to people pressing buttons. The notices themselves are
channel-neutral (``contest.ui.notices``); this renders one for Telegram.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from telegram import Bot, TelegramObject
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from yarl import URL

from contest.model import Account, Channel
from contest.ui.notices import Notice, Refused, Unreachable
from handlers.keyboards import menu_markup
from scheduler.throttle import SendThrottle

log = logging.getLogger(__name__)

RETRIES = 3
_JSON_HEADERS = {"Content-Type": "application/json"}
# As python-telegram-bot's defaults on the bulk bot: connect 5 s, read 5 s, 15 s in all.
_TIMEOUT = aiohttp.ClientTimeout(total=15.0, connect=5.0, sock_connect=5.0, sock_read=5.0)


def _env_proxy(url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The HTTP(S)_PROXY of the environment for this URL, as the request backend uses."""
    try:
        return get_env_proxy_for_url(URL(url))
    except LookupError:  # no proxy for this scheme, or NO_PROXY matches
        return None, None


def _raise_for(status: int, answer: dict[str, Any]) -> TelegramError:
    """The error python-telegram-bot raises for a refused call (its ``_request_wrapper``)."""
    description = answer.get("description")
    message = str(description) if description else "Unknown HTTPError"
    parameters = answer.get("parameters")
    if isinstance(parameters, dict):
        migrated = parameters.get("migrate_to_chat_id")
        if migrated:
            return ChatMigrated(int(migrated))
        retry_after = parameters.get("retry_after")
        if retry_after:
            return RetryAfter(timedelta(seconds=float(retry_after)))
    if status == 403:
        return Forbidden(message)
    if status in (401, 404):
        return InvalidToken(message)
    if status == 400:
        return BadRequest(message)
    if status == 409:
        return Conflict(message)
    if status == 502:
        return NetworkError(str(description) if description else "Bad Gateway")
    return NetworkError(f"{message} ({status})")


class TelegramNotifier:
    """Sends notices to Telegram accounts, paced and retried through 429s."""

    channel = Channel.TELEGRAM

    def __init__(self, bot: Bot, throttle: SendThrottle) -> None:
        self.bot = bot
        self.throttle = throttle
        self._proxy: tuple[URL | None, aiohttp.BasicAuth | None] | None = None

    @property
    def pace(self) -> float:
        """Messages per second overall (the throttle's allowance)."""
        return 1.0 / self.throttle.spacing

    async def _call(self, method: str, **kwargs: object) -> Any:
        """An HTML message call whose reply (Telegram's copy of the message) is not parsed
        back into objects: nothing here reads it, and a broadcast is thousands of them.

        On the aiohttp backend the call is posted as JSON straight through the bot's
        session: a fifth to a quarter less CPU than python-telegram-bot's form-encoded path
        (its parameter objects, then ``urlencode`` of every message's text), which is most
        of a broadcast's cost. The answer raises the errors python-telegram-bot would
        (``_raise_for``). On httpx, python-telegram-bot's own call (lower-case method
        names pass its check without a warning)."""
        fields = {**kwargs, "parse_mode": "HTML"}
        session = getattr(self.bot.request, "session", None)
        if not isinstance(session, aiohttp.ClientSession) or session.closed:
            return await self.bot.do_api_request(method.lower(), api_kwargs=fields)
        url = f"{self.bot.base_url}/{method}"
        if self._proxy is None:
            self._proxy = _env_proxy(url)
        body = json.dumps(
            {k: v.to_dict() if isinstance(v, TelegramObject) else v for k, v in fields.items()},
            ensure_ascii=False,
        ).encode()
        try:
            async with session.post(
                url,
                data=body,
                headers=_JSON_HEADERS,
                timeout=_TIMEOUT,
                proxy=self._proxy[0],
                proxy_auth=self._proxy[1],
                allow_redirects=False,
            ) as response:
                status, payload = response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc
        try:
            answer = json.loads(payload)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise NetworkError(f"Telegram's answer is not JSON ({status})")
        if 200 <= status <= 299 and answer.get("ok"):
            return answer.get("result")
        raise _raise_for(status, answer)

    async def _send(self, chat_id: int, call: Callable[[], Awaitable[Any]]) -> Any:
        for attempt in range(RETRIES):
            await self.throttle.wait(chat_id)
            try:
                return await call()
            except RetryAfter as exc:
                delay = exc.retry_after
                seconds = delay if isinstance(delay, int | float) else delay.total_seconds()
                log.warning("Telegram asked to slow down for %.1f s", seconds)
                self.throttle.pause(seconds)
                if attempt == RETRIES - 1:
                    raise
        return None

    async def deliver(self, account: Account, notice: Notice) -> None:
        """Send ``notice`` to the account's private chat (first retiring the exam card it
        replaces, if any). Raises Unreachable or Refused on a final answer of Telegram."""
        chat_id = int(account.user_id)
        try:
            if notice.retire is not None:
                card = notice.retire
                try:
                    await self._send(
                        card.chat_id,
                        lambda: self._call(
                            "editMessageText",
                            chat_id=card.chat_id,
                            message_id=card.message_id,
                            text=card.text,
                        ),
                    )
                except BadRequest as exc:  # already edited, or deleted: the notice goes on
                    log.info("could not retire a card: %s", exc.message)
            fields: dict[str, object] = {"chat_id": chat_id, "text": notice.text}
            if notice.menu:
                fields["reply_markup"] = menu_markup(notice.menu)
            await self._send(chat_id, lambda: self._call("sendMessage", **fields))
        except Forbidden as exc:
            raise Unreachable(exc.message) from exc
        except BadRequest as exc:
            if "chat not found" in exc.message.lower():
                raise Unreachable(exc.message) from exc
            raise Refused(exc.message) from exc
        except ChatMigrated as exc:
            raise Refused(str(exc)) from exc

    async def show(self, account: Account, notice: Notice, message_id: int | None) -> int | None:
        """A status message (a broadcast's progress) in the account's chat: ``message_id``
        edited if given (sent anew if it is gone), else sent; the id to edit next time."""
        chat_id = int(account.user_id)
        fields: dict[str, object] = {"chat_id": chat_id, "text": notice.text}
        if notice.menu:
            fields["reply_markup"] = menu_markup(notice.menu)
        if message_id is not None:
            try:
                await self._send(
                    chat_id, lambda: self._call("editMessageText", message_id=message_id, **fields)
                )
                return message_id
            except BadRequest as exc:
                if "not modified" in exc.message.lower():
                    return message_id
                log.info("could not edit a status message (%s): sending it anew", exc.message)
        result = await self._send(chat_id, lambda: self._call("sendMessage", **fields))
        found = result.get("message_id") if isinstance(result, dict) else None
        return int(found) if isinstance(found, int) else None
