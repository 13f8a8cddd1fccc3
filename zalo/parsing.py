"""What a person types on Zalo, understood: an answer letter, a menu number, a command."""

from __future__ import annotations

import re

# "a", "B", "b.", "C)", "(a)", "đáp án B", "câu trả lời: c" — one letter A, B or C.
_ANSWER = re.compile(
    r"^\s*(?:(?:đáp\s*án|đáp\s*an|dap\s*an|câu\s*trả\s*lời|chọn|chon)\s*[:\-]?\s*)?"
    r"[(\[]?\s*([abcABC])\s*[.)\]:]?\s*$",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"^\s*(\d{1,3})\s*[.)]?\s*$")
_COMMAND = re.compile(r"^\s*/([A-Za-z0-9_]{1,32})(?:@\S+)?(?:\s+(.*))?$", re.DOTALL)


def answer_letter(text: str) -> int | None:
    """The option a typed answer means (0 for A, 1 for B, 2 for C), or None."""
    match = _ANSWER.match(text)
    return "abc".index(match.group(1).lower()) if match else None


def menu_number(text: str) -> int | None:
    """A typed choice number (1-based), or None."""
    match = _NUMBER.match(text)
    return int(match.group(1)) if match else None


def command(text: str) -> tuple[str, tuple[str, ...]] | None:
    """``/name args…`` as (name in lower case, args), or None."""
    match = _COMMAND.match(text)
    if not match:
        return None
    rest = (match.group(2) or "").split()
    return match.group(1).lower(), tuple(rest)
