"""Registration: input validation and the step-by-step draft a person fills in."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, fields
from datetime import date
from enum import StrEnum
from typing import Any

from contest.errors import ContestError
from contest.model import Group, Position, UnitKind, age_on

NAME_MIN, NAME_MAX = 2, 100
MAX_AGE = 120
# Zero-width space and bidirectional overrides/isolates: invisible and misleading in a name.
# (The zero-width joiner stays: emoji sequences need it.)
_INVISIBLE = frozenset(
    "\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
)
# A name starting so would be a formula in a spreadsheet; it is never a Vietnamese name.
_FORMULA_STARTS = ("=", "+", "-", "@")
_DATE_RE = re.compile(r"^\s*(\d{1,2})\s*[/.\-]\s*(\d{1,2})\s*[/.\-]\s*(\d{4})\s*$")


class Step(StrEnum):
    CONSENT = "consent"
    NAME = "name"
    BIRTH_DATE = "birth_date"
    PHONE = "phone"
    GROUP = "group"
    UNIT_KIND = "unit_kind"
    UNIT = "unit"
    POSITION = "position"
    WARD = "ward"
    CONFIRM = "confirm"


# Fields a person may correct from the summary, and the step that asks for each.
EDITABLE: dict[str, Step] = {
    "name": Step.NAME,
    "birth_date": Step.BIRTH_DATE,
    "phone": Step.PHONE,
    "group": Step.GROUP,
    "unit": Step.UNIT_KIND,
    "position": Step.POSITION,
    "ward": Step.WARD,
}


def clean_name(text: str) -> str:
    """Validate a full name; keeps every character the person typed but folds spaces."""
    name = " ".join(unicodedata.normalize("NFC", text).split())
    if any(unicodedata.category(ch) == "Cc" or ch in _INVISIBLE for ch in name):
        raise ContestError("name_invalid")
    if not (NAME_MIN <= len(name) <= NAME_MAX) or not any(ch.isalpha() for ch in name):
        raise ContestError("name_invalid")
    if name.startswith(_FORMULA_STARTS):
        raise ContestError("name_invalid")
    return name


def parse_birth_date(text: str, today: date) -> date:
    """Parse dd/mm/yyyy and refuse impossible, future or implausibly old dates."""
    match = _DATE_RE.match(text)
    if not match:
        raise ContestError("birth_date_format")
    day, month, year = (int(g) for g in match.groups())
    try:
        born = date(year, month, day)
    except ValueError:
        raise ContestError("birth_date_impossible") from None
    if born > today:
        raise ContestError("birth_date_future")
    if age_on(born, today) > MAX_AGE:
        raise ContestError("birth_date_impossible")
    return born


def normalize_phone(raw: str) -> str:
    """Canonical phone form: '+' and digits; Vietnamese 0xxxxxxxxx becomes +84xxxxxxxxx."""
    digits = re.sub(r"\D", "", raw)
    if digits.startswith("00"):
        digits = digits[2:]  # international prefix
    elif digits.startswith("0") and len(digits) == 10:
        digits = "84" + digits[1:]
    if not 8 <= len(digits) <= 15:
        raise ContestError("phone_invalid")
    return "+" + digits


@dataclass
class Draft:
    """What a person has entered so far; persisted between messages and restarts."""

    step: Step = Step.CONSENT
    editing: bool = False
    consent: bool = False
    full_name: str | None = None
    birth_date: date | None = None
    phone: str | None = None
    group: Group | None = None
    unit_kind: UnitKind | None = None
    unit_id: int | None = None
    position: Position | None = None
    ward_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["birth_date"] = self.birth_date.isoformat() if self.birth_date else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Draft:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        draft = cls(**values)
        draft.step = Step(draft.step)
        born = data.get("birth_date")
        draft.birth_date = date.fromisoformat(born) if born else None
        draft.group = Group(draft.group) if draft.group else None
        draft.unit_kind = UnitKind(draft.unit_kind) if draft.unit_kind else None
        draft.position = Position(draft.position) if draft.position else None
        return draft

    def advance(self, natural_next: Step) -> None:
        """Go to the next step, or back to the summary when correcting a complete draft."""
        if self.editing and self.missing_step() is None:
            self.step = Step.CONFIRM
            self.editing = False
        elif self.editing:
            self.step = self.missing_step() or natural_next
        else:
            self.step = natural_next

    def missing_step(self) -> Step | None:
        """The first step whose answer is still missing, or None when complete."""
        if not self.consent:
            return Step.CONSENT
        if not self.full_name:
            return Step.NAME
        if not self.birth_date:
            return Step.BIRTH_DATE
        if not self.phone:
            return Step.PHONE
        if self.group is None:
            return Step.GROUP
        if self.group is Group.CIVIL_SERVANT:
            if self.unit_id is None:
                return Step.UNIT_KIND
            if self.position is None:
                return Step.POSITION
        elif self.ward_id is None:
            return Step.WARD
        return None

    def check_age(self, today: date, min_age: int) -> None:
        if (
            self.group is Group.CITIZEN
            and self.birth_date is not None
            and age_on(self.birth_date, today) < min_age
        ):
            raise ContestError("citizen_under_age", min_age=min_age)
