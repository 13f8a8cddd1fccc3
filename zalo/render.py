"""How a channel-neutral reply reads on Zalo: plain text (Zalo shows no markup here),
choices as numbered lines the person answers by typing the number, and messages split to
fit Zalo's 2,000 characters."""

from __future__ import annotations

from contest.ui.markup import plain
from contest.ui.reply import Menu

MAX_TEXT = 2000
CHOICE_HINT = "Gõ số tương ứng để chọn."


def numbered(menu: Menu | None) -> tuple[list[str], list[str]]:
    """The menu as numbered lines, and the action of each number (1-based)."""
    if not menu:
        return [], []
    lines: list[str] = []
    actions: list[str] = []
    for number, choice in enumerate(menu.choices(), start=1):
        lines.append(f"{number}. {plain(choice.label)}")
        actions.append(choice.action)
    return lines, actions


def render(markup: str, menu: Menu | None = None) -> tuple[list[str], list[str]]:
    """The messages to send (each at most 2,000 characters) and the actions of the
    numbered choices at their end."""
    text = plain(markup).strip()
    lines, actions = numbered(menu)
    if lines:
        text = (text + "\n\n" if text else "") + "\n".join(lines) + "\n" + CHOICE_HINT
    return split(text), actions


def split(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Cut a long text into messages at line breaks (a line longer than the limit is cut
    at the limit)."""
    if len(text) <= limit:
        return [text] if text else []
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current:
        parts.append(current)
    return parts
