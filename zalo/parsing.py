"""What a person types on Zalo, understood: an answer letter, a menu number, a command."""

from __future__ import annotations

import re

from contest.text import fold

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


# Vietnamese mobile numbers: 10 digits 0[35789]xxxxxxxx, also written +84 / 84 without the 0,
# with spaces, dots, dashes or brackets between the groups.
_SEPARATORS = re.compile(r"[\s.\-()]")
_VN_MOBILE = re.compile(r"^(?:\+84|84|0)([35789]\d{8})$")
_LINK_CODE = re.compile(r"^\s*(\d{6})\s*$")


def vn_mobile(text: str) -> str | None:
    """A typed Vietnamese mobile number in its canonical form (``+84xxxxxxxxx``), or None."""
    compact = _SEPARATORS.sub("", text.strip())
    match = _VN_MOBILE.match(compact)
    return "+84" + match.group(1) if match else None


def link_code(text: str) -> str | None:
    """A typed 6-digit linking code, or None."""
    match = _LINK_CODE.match(text)
    return match.group(1) if match else None


def bare_command(text: str, names: frozenset[str]) -> tuple[str, tuple[str, ...]] | None:
    """A command typed without its slash ("thi", "Ket qua", "lienket 123456"): the name
    when the first word (or the first two, joined) is one of ``names``."""
    words = fold(text).split()
    if not words or len(words) > 3:
        return None
    for size in (2, 1):
        if len(words) >= size:
            name = "".join(words[:size])
            if name in names:
                return name, tuple(words[size:])
    return None
