"""Round 2 and prizes in the domain: rank bands for those who did not qualify, ties on a
cut (qualification's or a prize's boundary), the fingerprint of a proposal an organiser
confirms, and the session code's salted hash."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from contest.rules import PrizeRules, TieBreak
from contest.scoring import PRIZE_NAMES, Ranked, TieRule

# Ranks are told in bands: 51–100, 101–200, 201–500, 501–1.000, 1.001–2.000 …
_BAND_STEPS = (1, 2, 5)


def rank_band(rank: int, total: int, first: int = 50) -> tuple[int, int]:
    """The band (low, high) a rank falls in: within the top ``first`` (the qualifiers: a
    person tied at the cut, or under the required share) the rank itself; then 1-2-5
    steps from 100; the last band ends at ``total``."""
    if rank <= first:
        return rank, rank
    low, scale = first + 1, 100
    while True:
        for step in _BAND_STEPS:
            edge = step * scale
            if edge <= first:
                continue
            if rank <= edge:
                return low, min(edge, max(total, rank))
            low = edge + 1
        scale *= 10


@dataclass(frozen=True)
class CutTie:
    """Persons sharing one rank across a cut: ``inside`` made it, ``outside`` did not. A
    shared rank means equal correct answers and equal tie breaks: only the rule's last
    word, the earlier submission, put them in that order."""

    label: str  # which cut (a prize's name, or "qualifiers")
    inside: list[Ranked]
    outside: list[Ranked]


def cut_tie(ranked: Sequence[Ranked], cut: int, label: str) -> CutTie | None:
    """The tie across position ``cut`` (0-based: entries [0, cut) are inside), if any."""
    if cut <= 0 or cut >= len(ranked):
        return None
    shared = ranked[cut - 1].rank
    if ranked[cut].rank != shared:
        return None
    inside = [r for r in ranked[:cut] if r.rank == shared]
    outside = []
    for entry in ranked[cut:]:
        if entry.rank != shared:
            break
        outside.append(entry)
    return CutTie(label, inside, outside)


def prize_ties(ranked: Sequence[Ranked], prizes: PrizeRules) -> list[CutTie]:
    """Every tie on a prize boundary: between two kinds of prize, or between the last
    prize and the first person without one."""
    counts = (prizes.first, prizes.second, prizes.third, prizes.consolation)
    ties: list[CutTie] = []
    edge = 0
    for name, count in zip(PRIZE_NAMES, counts, strict=True):
        if count == 0:
            continue
        edge += count
        tie = cut_tie(ranked, edge, name)
        if tie is not None and all(t.inside != tie.inside for t in ties):
            ties.append(tie)
    return ties


def fingerprint(entries: Sequence[tuple[int, ...]]) -> str:
    """A short digest of a proposal (who, with which attempt, at which rank): a confirm
    pressed on an out-of-date preview does not match it."""
    digest = hashlib.sha256(repr(sorted(entries)).encode()).hexdigest()
    return digest[:12]


def rule_words(rule: TieRule) -> str:
    """The tie rule in force, in Vietnamese (for the organisers' previews)."""
    parts = ["nhiều câu đúng hơn"]
    for tie in rule.breaks:
        if tie is TieBreak.PREDICTION:
            parts.append("dự đoán gần đáp án hơn")
        else:
            parts.append("thời gian làm bài ngắn hơn")
    parts.append("nộp bài sớm hơn")
    return ", rồi ".join(parts)


# ------------------------------------------------------------------ the session code

CODE_RE = re.compile(r"^[A-Z0-9]{4,12}$")
CODE_HASH_ITERATIONS = 20_000


def normalize_code(text: str) -> str:
    """A code as typed ("ab 12-34") as stored ("AB1234")."""
    return re.sub(r"[\s\-.]", "", text).upper()


def hash_code(code: str, salt: str | None = None) -> tuple[str, str]:
    """(salt, hash) of a normalized code."""
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac(
        "sha256", code.encode(), bytes.fromhex(salt), CODE_HASH_ITERATIONS
    ).hex()
    return salt, digest


def code_matches(code: str, salt: str, digest: str) -> bool:
    return hmac.compare_digest(hash_code(code, salt)[1], digest)
