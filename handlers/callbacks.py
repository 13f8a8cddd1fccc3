"""Callback-data codec: short ASCII strings under Telegram's 64-byte limit."""

from __future__ import annotations

from dataclasses import dataclass

MAX_BYTES = 64


class BadCallback(ValueError):
    """Callback data that this bot did not produce (forged, truncated or from an old build)."""


def encode(*parts: object) -> str:
    data = ":".join(str(p) for p in parts)
    if len(data.encode("utf-8")) > MAX_BYTES:
        raise ValueError(f"callback data too long: {data!r}")
    return data


@dataclass(frozen=True)
class Answer:
    attempt_id: int
    position: int
    choice: int


def parse_answer(data: str) -> Answer:
    """``x:a:<attempt>:<position>:<choice>``."""
    parts = data.split(":")
    if len(parts) != 5 or parts[:2] != ["x", "a"]:
        raise BadCallback(data)
    try:
        attempt_id, position, choice = (int(p) for p in parts[2:])
    except ValueError:
        raise BadCallback(data) from None
    if attempt_id <= 0 or not 0 <= position < 1000 or not 0 <= choice < 3:
        raise BadCallback(data)
    return Answer(attempt_id, position, choice)


def answer_data(attempt_id: int, position: int, choice: int) -> str:
    return encode("x", "a", attempt_id, position, choice)


def parse_reg(data: str) -> tuple[str, str]:
    """``r:<action>[:<argument>]`` -> (action, argument)."""
    parts = data.split(":", 2)
    if len(parts) < 2 or parts[0] != "r" or not parts[1]:
        raise BadCallback(data)
    return parts[1], parts[2] if len(parts) == 3 else ""


def parse_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadCallback(value) from None
    if number < 0:
        raise BadCallback(value)
    return number
