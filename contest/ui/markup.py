"""The neutral markup of every text: a subset of Telegram's HTML (``<b>``, ``<i>``,
``<code>``, ``<u>``) with ``&``, ``<`` and ``>`` escaped in whatever a person or the bank
supplied. Telegram shows it as it is; a text-only channel strips the tags (``plain``)."""

from __future__ import annotations

import re
from html import escape, unescape

_TAG = re.compile(r"</?(?:b|i|u|code|s)>")


def h(text: str) -> str:
    """Escape user or bank text for the markup (quotes kept as typed)."""
    return escape(text, quote=False)


def b(text: str) -> str:
    """Bold, for text that is already markup."""
    return f"<b>{text}</b>"


def i(text: str) -> str:
    """Italic, for text that is already markup."""
    return f"<i>{text}</i>"


def plain(markup: str) -> str:
    """The text as a channel without formatting shows it: tags dropped, escapes undone."""
    return unescape(_TAG.sub("", markup))
