"""Text helpers shared by the domain and the adapters."""

from __future__ import annotations

import hashlib
import unicodedata


def fold(text: str) -> str:
    """Accent- and case-insensitive form for search: 'Đống Đa' -> 'dong da'."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return " ".join(stripped.casefold().split())


def question_key(text: str) -> str:
    """Identity of a question text for re-imports: case and spacing do not matter."""
    canonical = " ".join(unicodedata.normalize("NFC", text).casefold().split())
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
