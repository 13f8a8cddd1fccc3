"""A reply, channel-neutral: text in the neutral markup, an optional menu of choices, an
optional document, a short alert for the press itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

ACTION_MAX_BYTES = 64  # Telegram's limit for callback data; other channels keep it in state


@dataclass(frozen=True)
class Choice:
    """One choice of a menu: what it says, and the action it stands for (an ASCII string of
    at most 64 bytes, ``prefix:arg:arg``)."""

    label: str
    action: str

    def __post_init__(self) -> None:
        if len(self.action.encode("utf-8")) > ACTION_MAX_BYTES or not self.action.isascii():
            raise ValueError(f"action too long or not ASCII: {self.action!r}")


@dataclass(frozen=True)
class Menu:
    """Rows of choices (Telegram: inline buttons; a text-only channel: numbered lines)."""

    rows: tuple[tuple[Choice, ...], ...]

    @classmethod
    def of(cls, *rows: Sequence[Choice]) -> Menu:
        return cls(tuple(tuple(row) for row in rows if row))

    @classmethod
    def column(cls, choices: Iterable[Choice]) -> Menu:
        return cls(tuple((choice,) for choice in choices))

    def choices(self) -> list[Choice]:
        return [choice for row in self.rows for choice in row]

    def __bool__(self) -> bool:
        return any(self.rows)


@dataclass(frozen=True)
class Document:
    """A file sent with the reply (an export)."""

    filename: str
    data: bytes
    caption: str = ""


@dataclass(frozen=True)
class Expect:
    """The reply waits for typed input of ``kind`` (with ``data`` to carry along): the next
    text the person sends goes to the console's input handler for that kind."""

    kind: str
    data: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    text: str = ""  # neutral markup
    menu: Menu | None = None
    document: Document | None = None
    alert: str | None = None  # answers the press itself (Telegram: a popup)
    new_message: bool = False  # do not replace the pressed message: send a new one
    expect: Expect | None = None
    cancel_input: bool = True  # a reply without ``expect`` ends any input being awaited
    roles_changed: bool = False  # staff roles changed: channels refresh their command menus
    # A slow part (an export made in another process): the channel shows this reply at once,
    # then awaits ``later`` and shows the reply it returns as a new message.
    later: Callable[[], Awaitable[Reply]] | None = field(default=None, compare=False)
