"""A client of the Zalo Bot API (https://bot-api.zaloplatforms.com/bot<TOKEN>/<method>):
JSON in, ``{"ok", "result", "error_code", "description"}`` out.

The token is part of every URL: no URL, request or transport error text ever reaches a log
or an exception message here (errors carry the method, the code and Zalo's description).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

ZALO_API_URL = "https://bot-api.zaloplatforms.com/"
NO_UPDATE = 408  # getUpdates: nothing arrived within the timeout


class ZaloError(Exception):
    """Zalo answered ``ok: false``: a final answer about this request."""

    def __init__(self, method: str, code: int, description: str) -> None:
        super().__init__(f"{method}: {code} {description}")
        self.method = method
        self.code = code
        self.description = description

    @property
    def unreachable(self) -> bool:
        """The person cannot be reached (blocked the bot, unknown chat)."""
        text = self.description.lower()
        return self.code == 403 or "chat not found" in text or "blocked" in text

    @property
    def transient(self) -> bool:
        """Worth trying again later: rate limited, or a server-side failure."""
        return self.code == 429 or self.code >= 500


class ZaloNetworkError(Exception):
    """The request did not get an answer (connection, timeout): try again later."""

    def __init__(self, method: str, kind: str) -> None:
        super().__init__(f"{method}: {kind}")
        self.method = method
        self.kind = kind


class ZaloApi:
    """One bot's API. ``close()`` closes the session it opened (not one it was given)."""

    def __init__(
        self,
        token: str,
        base_url: str = ZALO_API_URL,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        pool_size: int = 32,
    ) -> None:
        self._token = token
        self._base = base_url.rstrip("/") + "/bot" + token + "/"
        self._session = session
        self._own_session = session is None
        self._timeout = timeout
        self._pool_size = pool_size

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                json_serialize=lambda value: json.dumps(value, ensure_ascii=False),
            )
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Call ``method``; its ``result``, or ZaloError / ZaloNetworkError."""
        session = await self._http()
        limit = aiohttp.ClientTimeout(total=timeout or self._timeout)
        try:
            async with session.post(
                self._base + method, json=params or {}, timeout=limit
            ) as response:
                try:
                    body = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    raise ZaloNetworkError(method, f"HTTP {response.status}, no JSON") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ZaloNetworkError(method, type(exc).__name__) from None
        if not isinstance(body, dict):
            raise ZaloNetworkError(method, "unexpected answer")
        if not body.get("ok"):
            code = body.get("error_code")
            raise ZaloError(
                method,
                int(code) if isinstance(code, int) else 0,
                str(body.get("description") or "")[:300],
            )
        return body.get("result")

    async def get_me(self) -> dict[str, Any]:
        result = await self.call("getMe")
        return result if isinstance(result, dict) else {}

    async def get_update(self, timeout: int = 30) -> dict[str, Any] | None:
        """Long poll for ONE update (the Zalo Bot API gives one per call, no offset);
        None when nothing arrived in time."""
        try:
            result = await self.call("getUpdates", {"timeout": str(timeout)}, timeout=timeout + 10)
        except ZaloError as exc:
            if exc.code == NO_UPDATE:
                return None
            raise
        return result if isinstance(result, dict) and result else None

    async def set_webhook(self, url: str, secret: str) -> None:
        await self.call("setWebhook", {"url": url, "secret_token": secret})

    async def delete_webhook(self) -> None:
        await self.call("deleteWebhook")

    async def webhook_info(self) -> dict[str, Any]:
        result = await self.call("getWebhookInfo")
        return result if isinstance(result, dict) else {}

    async def send_message(self, chat_id: str, text: str) -> dict[str, Any]:
        result = await self.call("sendMessage", {"chat_id": chat_id, "text": text})
        return result if isinstance(result, dict) else {}

    async def send_chat_action(self, chat_id: str, action: str = "typing") -> None:
        await self.call("sendChatAction", {"chat_id": chat_id, "action": action})
