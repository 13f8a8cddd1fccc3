"""Notices: what a notification of the outbox says, written once and rendered per channel.

A notification row holds a kind and a payload (``contest.usecases.outbox``). At sending
time its kind's renderer turns it into a ``Notice`` (text in the neutral markup, maybe a
menu) as things stand then, or None when there is nothing left to say (a warning for an
attempt already over). The sender gives the notice to the channel the person used last.

Each capability registers the renderers of its own kinds with ``@notice("kind")``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from contest.ports import Notification
from contest.ui.reply import Menu

if TYPE_CHECKING:
    from contest.services import ContestService


@dataclass(frozen=True)
class CardRef:
    """A message that showed an attempt's card (Telegram: chat and message id), to be
    retired (edited to ``text``) before the notice is sent; channels without edits skip it."""

    chat_id: int
    message_id: int
    text: str


@dataclass(frozen=True)
class Notice:
    text: str  # neutral markup
    menu: Menu | None = None
    retire: CardRef | None = None
    # Not now (the quiet hours): the sender puts the notification back until then.
    defer_until: datetime | None = None


Renderer = Callable[["ContestService", Notification], Awaitable[Notice | None]]
_RENDERERS: dict[str, Renderer] = {}


def notice(kind: str) -> Callable[[Renderer], Renderer]:
    """Register the renderer of a notification kind."""

    def register(renderer: Renderer) -> Renderer:
        if kind in _RENDERERS and _RENDERERS[kind] is not renderer:
            raise ValueError(f"two renderers for notification kind {kind!r}")
        _RENDERERS[kind] = renderer
        return renderer

    return register


def kinds() -> frozenset[str]:
    return frozenset(_RENDERERS)


async def render(service: ContestService, note: Notification) -> Notice | None:
    """The notice of a notification as things stand now; None when nothing is left to say.
    A kind nobody registered raises KeyError (a notification the sender cannot word)."""
    return await _RENDERERS[note.kind](service, note)


class Unreachable(Exception):
    """The platform says the person cannot be reached (blocked the bot, chat not found):
    a final answer. Bulk sends skip them until they write to the bot again."""


class Refused(Exception):
    """The platform refused this notice for good (a malformed request): a final answer."""
