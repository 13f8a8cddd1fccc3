"""A fake Zalo Bot API server for tests, the benchmark and rehearsals.

Shaped by the Zalo Bot Platform's documentation (bot-api.zaloplatforms.com):

* methods at ``/bot<TOKEN>/<method>``, parameters as JSON (also form or query), every
  answer ``{"ok": …, "result": …, "error_code": …, "description": …}``;
* ``getMe``; ``getUpdates``: long polling, ONE update per call, no offset (an update is
  gone once returned), ``timeout`` in seconds (default 30); with nothing to give it
  answers ``{"ok": false, "error_code": 408, "description": "Request timeout"}``;
* ``setWebhook`` (``url`` and a ``secret_token`` of 8–256 characters), ``deleteWebhook``,
  ``getWebhookInfo``; while a webhook is set, ``getUpdates`` is refused and each update is
  POSTed to the URL as ``{"ok": true, "result": <update>}`` with the secret in the header
  ``X-Bot-Api-Secret-Token``;
* ``sendMessage`` (``chat_id``, ``text`` of 1–2,000 characters), ``sendPhoto``,
  ``sendSticker``, ``sendChatAction``; no buttons, no edits, no documents;
* updates ``{"event_name": "message.text.received" | "message.image.received" |
  "message.sticker.received" | "message.unsupported.received", "message": {"message_id",
  "from": {"id", "display_name", "is_bot"}, "chat": {"id", "chat_type"}, "date" (ms),
  "text"}}``.

A person who "blocked" the bot makes sends to them fail with error 403. Errors and delays
can be injected per method. A small control API under ``/_fake/`` lets another process
(the rehearsal page) play the users.

Run standalone with ``python -m fakes.zalo --port 8082 --token 1234:ZALO-TEST-TOKEN``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

__all__ = ["DEFAULT_TOKEN", "FakeZaloApi", "FakeZaloUser", "ZaloMessage"]

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "1234567890:ZALO-TEST-TOKEN"
MAX_TEXT = 2000
SECRET_HEADER = "X-Bot-Api-Secret-Token"
TEXT_EVENT = "message.text.received"
IMAGE_EVENT = "message.image.received"
STICKER_EVENT = "message.sticker.received"
UNSUPPORTED_EVENT = "message.unsupported.received"


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Wake:
    """Wakes every waiter at once (long polls, tests waiting for messages)."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self, timeout: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, max(timeout, 0))
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)


@dataclass
class ZaloMessage:
    """A message of a chat: the person's or the bot's."""

    message_id: str
    from_bot: bool
    text: str
    date: int
    seq: int
    kind: str = "text"  # text, photo, sticker, image, unsupported
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "from_bot": self.from_bot,
            "text": self.text,
            "date": self.date,
            "seq": self.seq,
            "kind": self.kind,
            **self.extra,
        }


@dataclass
class _Injection:
    error_code: int | None
    description: str | None
    delay: float
    remaining: int | None


class FakeZaloUser:
    """A Zalo user talking to the bot in a private chat."""

    def __init__(self, api: FakeZaloApi, user_id: str, display_name: str) -> None:
        self.api = api
        self.id = user_id
        self.display_name = display_name
        self.messages: list[ZaloMessage] = []
        self.blocked = False
        self.wake = _Wake()
        self._cursor = 0

    def __repr__(self) -> str:
        return f"FakeZaloUser({self.id!r}, {self.display_name!r})"

    def bot_messages(self) -> list[ZaloMessage]:
        return [m for m in self.messages if m.from_bot]

    @property
    def last_bot_message(self) -> ZaloMessage | None:
        sent = self.bot_messages()
        return sent[-1] if sent else None

    def transcript(self) -> str:
        return "\n".join(
            f"  #{m.seq} {'bot ' if m.from_bot else 'user'}: {m.text!r}" for m in self.messages
        )

    def _add(self, from_bot: bool, text: str, kind: str = "text", **extra: Any) -> ZaloMessage:
        message = ZaloMessage(
            uuid.uuid4().hex[:20], from_bot, text, _now_ms(), next(self.api._seq), kind, extra
        )
        self.api._last_seq = message.seq
        self.messages.append(message)
        self.wake.notify()
        self.api._wake.notify()
        return message

    def _event(self, event_name: str, message: ZaloMessage, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message_id": message.message_id,
            "from": {"id": self.id, "display_name": self.display_name, "is_bot": False},
            "chat": {"id": self.id, "chat_type": "PRIVATE"},
            "date": message.date,
            **fields,
        }
        return {"event_name": event_name, "message": body}

    async def send_text(self, text: str) -> ZaloMessage:
        """The person sends a text to the bot."""
        message = self._add(False, text)
        self._cursor = message.seq
        self.api._queue(self._event(TEXT_EVENT, message, text=text))
        return message

    async def send_image(self, url: str = "https://example.invalid/anh.jpg") -> ZaloMessage:
        message = self._add(False, "", "image", photo=url)
        self._cursor = message.seq
        self.api._queue(self._event(IMAGE_EVENT, message, photo=url, url=url))
        return message

    async def send_sticker(self, sticker: str = "abc123") -> ZaloMessage:
        message = self._add(False, "", "sticker", sticker=sticker)
        self._cursor = message.seq
        self.api._queue(self._event(STICKER_EVENT, message, sticker=sticker))
        return message

    async def send_unsupported(self) -> ZaloMessage:
        message = self._add(False, "", "unsupported")
        self._cursor = message.seq
        self.api._queue(self._event(UNSUPPORTED_EVENT, message))
        return message

    def mark(self) -> int:
        """The current position: ``wait_for(since=...)`` looks at what comes after it."""
        return self.api._seq_value()

    async def wait_for(
        self,
        predicate: Callable[[ZaloMessage], bool] | None = None,
        timeout: float = 5.0,
        *,
        since: int | None = None,
    ) -> ZaloMessage:
        """The first bot message after the person's last message (or ``since``) that
        matches ``predicate``."""
        cursor = self._cursor if since is None else since
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for message in self.messages:
                matches = predicate is None or predicate(message)
                if message.from_bot and message.seq > cursor and matches:
                    return message
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"No matching bot message for Zalo user {self.id} within {timeout}s.\n"
                    f"Transcript:\n{self.transcript()}"
                )
            await self.wake.wait(remaining)

    async def wait_for_text(self, fragment: str, timeout: float = 5.0) -> ZaloMessage:
        return await self.wait_for(lambda m: fragment in m.text, timeout)


class FakeZaloApi:
    """The fake server and the Python API that plays its users."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bot_name: str = "bot.CuocThiCCHC",
        webhook_timeout: float = 10.0,
    ) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.bot_id = token.split(":", 1)[0]
        self.bot_name = bot_name
        self.webhook_timeout = webhook_timeout
        self.users: dict[str, FakeZaloUser] = {}
        self.calls: deque[tuple[str, dict[str, Any], int]] = deque(maxlen=100_000)
        self.webhook_url = ""
        self.webhook_secret = ""
        self.webhook_updated_at = 0
        self._pending: deque[dict[str, Any]] = deque()
        self._wake = _Wake()
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._injections: dict[str, list[_Injection]] = {}
        self._runner: web.AppRunner | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._session: ClientSession | None = None
        self._closing = False

    # -- lifecycle

    @property
    def base_url(self) -> str:
        """The API's base URL, to which ``bot<TOKEN>/<method>`` is appended."""
        return f"http://{self.host}:{self.port}/"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._add_control_routes(app)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        self._closing = True
        self._wake.notify()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
            self._webhook_task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeZaloApi:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- test API

    def user(self, user_id: str, display_name: str = "Người dùng Zalo") -> FakeZaloUser:
        existing = self.users.get(user_id)
        if existing is not None:
            return existing
        user = FakeZaloUser(self, user_id, display_name)
        self.users[user_id] = user
        return user

    def calls_of(self, method: str) -> list[tuple[str, dict[str, Any], int]]:
        return [call for call in self.calls if call[0] == method]

    def inject_error(
        self, method: str, error_code: int, description: str | None = None, times: int | None = 1
    ) -> None:
        """The next ``times`` calls of ``method`` ("*": any) fail with ``error_code``."""
        self._injections.setdefault(method, []).append(
            _Injection(error_code, description, 0.0, times)
        )

    def inject_delay(self, method: str, seconds: float, times: int | None = 1) -> None:
        self._injections.setdefault(method, []).append(_Injection(None, None, seconds, times))

    def clear_injections(self) -> None:
        self._injections.clear()

    @property
    def pending_updates(self) -> int:
        return len(self._pending)

    # -- internals

    def _seq_value(self) -> int:
        return self._last_seq

    def _queue(self, update: dict[str, Any]) -> None:
        self._pending.append(update)
        self._wake.notify()
        if self.webhook_url:
            self._ensure_webhook_task()

    def _take(self, method: str) -> _Injection | None:
        for key in (method, "*"):
            for rule in self._injections.get(key, []):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._injections[key].remove(rule)
                return rule
        return None

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.body_exists:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        return params

    @staticmethod
    def _error(code: int, description: str) -> web.Response:
        # The Zalo Bot API answers errors in the envelope, with the HTTP status matching.
        status = code if 400 <= code < 600 else 400
        return web.json_response(
            {"ok": False, "error_code": code, "description": description}, status=status
        )

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        method = request.match_info["method"]
        try:
            params = await self._params(request)
        except ValueError:
            return self._error(400, "Bad Request: invalid JSON")
        self.calls.append((method, params, _now_ms()))
        injected = self._take(method)
        if injected is not None and injected.error_code is None:
            await asyncio.sleep(injected.delay)
        elif injected is not None and injected.error_code is not None:
            return self._error(injected.error_code, injected.description or "Injected error")
        handler = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendSticker": self._send_sticker,
            "sendChatAction": self._send_chat_action,
        }.get(method)
        if handler is None:
            return self._error(404, "Not Found")
        return await handler(params)

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    async def _get_me(self, params: dict[str, Any]) -> web.Response:
        return self._ok(
            {
                "id": self.bot_id,
                "account_name": self.bot_name,
                "account_type": "BASIC",
                "can_join_groups": False,
            }
        )

    async def _get_updates(self, params: dict[str, Any]) -> web.Response:
        if self.webhook_url:
            return self._error(409, "Conflict: webhook is active, use deleteWebhook first")
        try:
            timeout = min(max(float(params.get("timeout", 30)), 0.0), 60.0)
        except (TypeError, ValueError):
            return self._error(400, "Bad Request: timeout must be a number of seconds")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._pending and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await self._wake.wait(remaining)
        if not self._pending:
            return self._error(408, "Request timeout")
        return self._ok(self._pending.popleft())

    async def _set_webhook(self, params: dict[str, Any]) -> web.Response:
        url = str(params.get("url", ""))
        secret = str(params.get("secret_token", ""))
        if not url.startswith(("http://", "https://")):
            return self._error(400, "Bad Request: url must be an HTTPS URL")
        if not 8 <= len(secret) <= 256:
            return self._error(400, "Bad Request: secret_token must have 8 to 256 characters")
        self.webhook_url, self.webhook_secret = url, secret
        self.webhook_updated_at = _now_ms()
        self._ensure_webhook_task()
        return self._ok({"url": url, "updated_at": self.webhook_updated_at})

    async def _delete_webhook(self, params: dict[str, Any]) -> web.Response:
        self.webhook_url, self.webhook_secret = "", ""
        self.webhook_updated_at = _now_ms()
        return self._ok({"url": "", "updated_at": self.webhook_updated_at})

    async def _get_webhook_info(self, params: dict[str, Any]) -> web.Response:
        return self._ok({"url": self.webhook_url, "updated_at": self.webhook_updated_at})

    def _chat(self, params: dict[str, Any]) -> FakeZaloUser | web.Response:
        chat_id = str(params.get("chat_id", ""))
        user = self.users.get(chat_id)
        if user is None:
            return self._error(400, "Bad Request: chat not found")
        if user.blocked:
            return self._error(403, "Forbidden: the user has blocked the bot")
        return user

    def _sent(self, message: ZaloMessage) -> web.Response:
        return self._ok({"message_id": message.message_id, "date": message.date})

    async def _send_message(self, params: dict[str, Any]) -> web.Response:
        user = self._chat(params)
        if isinstance(user, web.Response):
            return user
        text = params.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
            return self._error(400, f"Bad Request: text must have 1 to {MAX_TEXT} characters")
        return self._sent(user._add(True, text))

    async def _send_photo(self, params: dict[str, Any]) -> web.Response:
        user = self._chat(params)
        if isinstance(user, web.Response):
            return user
        photo = params.get("photo")
        if not isinstance(photo, str) or not photo:
            return self._error(400, "Bad Request: photo is required")
        caption = str(params.get("caption", ""))
        return self._sent(user._add(True, caption, "photo", photo=photo))

    async def _send_sticker(self, params: dict[str, Any]) -> web.Response:
        user = self._chat(params)
        if isinstance(user, web.Response):
            return user
        sticker = str(params.get("sticker", ""))
        return self._sent(user._add(True, "", "sticker", sticker=sticker))

    async def _send_chat_action(self, params: dict[str, Any]) -> web.Response:
        user = self._chat(params)
        if isinstance(user, web.Response):
            return user
        return web.json_response({"ok": True})

    # -- webhook delivery

    def _ensure_webhook_task(self) -> None:
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.get_running_loop().create_task(self._deliver())

    async def _deliver(self) -> None:
        """POST pending updates to the webhook, one at a time, retrying until it answers
        200 (as long as the webhook stays set)."""
        if self._session is None:
            self._session = ClientSession(timeout=ClientTimeout(total=self.webhook_timeout))
        while self.webhook_url and not self._closing:
            if not self._pending:
                await self._wake.wait(1.0)
                continue
            update = self._pending[0]
            try:
                async with self._session.post(
                    self.webhook_url,
                    json={"ok": True, "result": update},
                    headers={SECRET_HEADER: self.webhook_secret},
                ) as response:
                    delivered = response.status == 200
            except Exception:
                delivered = False
            if delivered:
                if self._pending and self._pending[0] is update:
                    self._pending.popleft()
            else:
                await asyncio.sleep(0.2)

    # -- control API (another process plays the users)

    def _add_control_routes(self, app: web.Application) -> None:
        app.router.add_post("/_fake/zalo/users/{user_id}/text", self._c_text)
        app.router.add_post("/_fake/zalo/users/{user_id}/block", self._c_block)
        app.router.add_post("/_fake/zalo/users/{user_id}/unblock", self._c_block)
        app.router.add_get("/_fake/zalo/users/{user_id}/messages", self._c_messages)

    async def _c_text(self, request: web.Request) -> web.Response:
        body = await request.json()
        user = self.user(request.match_info["user_id"], str(body.get("display_name") or "Khách"))
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return web.json_response({"ok": False, "description": "text is required"}, status=400)
        message = await user.send_text(text)
        return web.json_response({"ok": True, "result": message.to_record()})

    async def _c_block(self, request: web.Request) -> web.Response:
        user = self.user(request.match_info["user_id"])
        user.blocked = request.path.endswith("/block")
        return web.json_response({"ok": True, "result": {"blocked": user.blocked}})

    async def _c_messages(self, request: web.Request) -> web.Response:
        user = self.users.get(request.match_info["user_id"])
        records = [m.to_record() for m in user.messages] if user else []
        return web.json_response(records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A fake Zalo Bot API server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    args = parser.parse_args(argv)

    async def serve() -> None:
        api = FakeZaloApi(args.token, args.host, args.port)
        await api.start()
        print(json.dumps({"url": api.url, "token": api.token}), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await api.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
