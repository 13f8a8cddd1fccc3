"""Logging: one handler on the root logger, whose formatter masks secrets and personal data
in the fully formatted text (message, arguments, traceback, stack) of every record, whatever
logger it comes from.

* Secrets: every value given to :func:`register_secret` (the bot token, the webhook secret and
  URL, the database password: :func:`register_settings_secrets`), and anything shaped like a
  bot token (``123456789:`` followed by 30 or more token characters), become ``***``.
* Personal data, as a second line of defence (our own code never logs it): Vietnamese phone
  numbers (``0912345678``, ``+84912345678``, ``84912345678``, landlines ``02…``), the value of
  any ``phone``/``phone_number`` field, and dates written day/month/year (birth dates).
* Libraries (python-telegram-bot, httpx, aiohttp, asyncio, APScheduler, SQLAlchemy …) stay
  at INFO or above even with ``--log-level DEBUG``: their DEBUG lines carry whole updates and
  requests, with names, phones and birth dates. ``--log-raw-payloads`` lets them through (and
  stops masking personal data, which is what the operator asked to see); secrets are masked
  whatever the flags.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from types import TracebackType
from typing import TYPE_CHECKING, TextIO
from urllib.parse import quote

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = [
    "FORMAT",
    "MASK",
    "RedactingFormatter",
    "configure_logging",
    "redact",
    "register_secret",
    "register_settings_secrets",
]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"
# Shorter values are not masked: masking "abc" everywhere would garble the log and hide
# nothing worth hiding (a secret that short is guessed anyway).
MIN_SECRET_LENGTH = 6

# Our own packages: they log at the level asked for, DEBUG included.
OWN_LOGGERS = ("bot", "contest", "contest_bot", "handlers", "scheduler", "storage", "zalo")
# Chatty even at INFO (httpx logs every request URL, apscheduler every run): WARNING.
QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "aiohttp.access", "alembic", "sqlalchemy")
LIBRARY_FLOOR = logging.INFO

TOKEN_SHAPE = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")
_PHONE_FIELD = re.compile(
    r"""(?P<key>phone(?:_number)?["']?\s*[:=]\s*["']?)(?P<value>[^"',;)}\]\s][^"',;)}\]]*)""",
    re.IGNORECASE,
)
# Vietnamese numbers: mobiles 0[35789]xxxxxxxx, landlines 02xxxxxxxxx, with 0 or (+)84.
_VN_PHONE = re.compile(r"(?<![\w+])(?:\+84|84|0)(?:[35789]\d{8}|2\d{9})(?!\w)")
_DMY_DATE = re.compile(
    r"(?<![\w/.-])(?:0?[1-9]|[12]\d|3[01])([/.-])(?:0?[1-9]|1[0-2])\1(?:19|20)\d{2}(?![\w/])"
)


class _Secrets:
    """The registered secrets, as one compiled pattern (longest first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self.pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        variants = {value, quote(value, safe=""), quote(value, safe="/:")}
        with self._lock:
            if variants <= self._values:
                return
            self._values |= variants
            ordered = sorted(self._values, key=len, reverse=True)
            self.pattern = re.compile("|".join(re.escape(v) for v in ordered))


_SECRETS = _Secrets()


def register_secret(value: str | None) -> None:
    """Mask ``value`` (and its URL-encoded forms) in every log line from now on. Values
    shorter than MIN_SECRET_LENGTH characters are ignored."""
    if value is None:
        return
    value = value.strip()
    if len(value) >= MIN_SECRET_LENGTH:
        _SECRETS.add(value)


def register_settings_secrets(settings: Settings) -> None:
    """Register the secrets found in the settings: the bot tokens (Telegram, Zalo), the
    webhook secrets, the webhook URLs and their paths (a path is a secret route), the
    database password."""
    if settings.bot_token is not None:
        register_secret(settings.bot_token.get_secret_value())
    if settings.webhook_secret is not None:
        register_secret(settings.webhook_secret.get_secret_value())
    if settings.zalo_token is not None:
        register_secret(settings.zalo_token.get_secret_value())
    if settings.zalo_webhook_secret is not None:
        register_secret(settings.zalo_webhook_secret.get_secret_value())
    for webhook_url in (settings.webhook_url, settings.zalo_webhook_url):
        if not webhook_url:
            continue
        url = webhook_url.strip()
        register_secret(url)
        scheme_end = url.find("//")
        path_start = url.find("/", scheme_end + 2) if scheme_end >= 0 else -1
        if path_start >= 0:
            path = url[path_start:].split("?", 1)[0].split("#", 1)[0].rstrip("/")
            register_secret(path)  # with its leading slash: "/tg/abc…", not a bare word
    try:
        password = make_url(settings.database_url).password
    except (ArgumentError, ValueError):
        password = None
    if password:
        register_secret(str(password))


def redact(text: str, *, personal_data: bool = True) -> str:
    """``text`` with the secrets masked, and the personal data if ``personal_data``."""
    pattern = _SECRETS.pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = TOKEN_SHAPE.sub(MASK, text)
    if personal_data:
        text = _PHONE_FIELD.sub(lambda m: m.group("key") + MASK, text)
        text = _VN_PHONE.sub(MASK, text)
        text = _DMY_DATE.sub(MASK, text)
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter that masks the finished text: the message with its arguments, the
    traceback (even one another handler formatted and cached unmasked) and the stack."""

    def __init__(
        self, fmt: str | None = FORMAT, datefmt: str | None = None, *, personal_data: bool = True
    ) -> None:
        super().__init__(fmt, datefmt)
        self.personal_data = personal_data

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), personal_data=self.personal_data)


class _Handler(logging.StreamHandler[TextIO]):
    """The handler :func:`configure_logging` installs (so a second call replaces it)."""


def level_number(level: str | int) -> int:
    """``"debug"``, ``"INFO"`` … or a number: the level's number (ValueError if unknown)."""
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.strip().upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level: {level!r}")
    return number


def configure_logging(
    level: str | int = "INFO", *, raw_payloads: bool = False, stream: TextIO | None = None
) -> logging.Handler:
    """Log to ``stream`` (standard error by default) through a masking formatter.

    Our loggers get ``level``; libraries get at least INFO (WARNING for the chatty ones)
    unless ``raw_payloads``. Uncaught exceptions are printed through the same masks.
    """
    numeric = level_number(level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    handler = _Handler(stream if stream is not None else sys.stderr)
    formatter = RedactingFormatter(personal_data=not raw_payloads)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    # The root level is what every library logger without a level of its own inherits.
    root.setLevel(numeric if raw_payloads else max(numeric, LIBRARY_FLOOR))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(numeric)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        text = "".join(traceback.format_exception(kind, exc, tb))
        handler.stream.write(redact(text, personal_data=formatter.personal_data))
        handler.flush()

    sys.excepthook = excepthook
    return handler
