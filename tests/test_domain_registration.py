"""Unit tests of registration input validation and the step-by-step draft."""

from __future__ import annotations

import json
import unicodedata
from datetime import date

import pytest

from contest.errors import ContestError
from contest.model import Group, Position, UnitKind, age_on
from contest.registration import (
    EDITABLE,
    Draft,
    Step,
    clean_name,
    normalize_phone,
    parse_birth_date,
)

TODAY = date(2024, 8, 1)


def error_code(exc_info: pytest.ExceptionInfo[ContestError]) -> str:
    return exc_info.value.code


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("Nguyễn Văn An", "Nguyễn Văn An"),
        ("Trần Thị Ánh Tuyết", "Trần Thị Ánh Tuyết"),
        ("Đặng Hữu Phước", "Đặng Hữu Phước"),
        ("<b>Lê</b> & Co", "<b>Lê</b> & Co"),
        ("An 😀", "An 😀"),
        ("  Phạm   Minh\tĐức  ", "Phạm Minh Đức"),
        ("Hoàng\nMai", "Hoàng Mai"),
        ("Lê Văn 3", "Lê Văn 3"),
        ("Ab", "Ab"),
        ("O'Brien-Smith", "O'Brien-Smith"),
    ],
)
def test_clean_name_keeps_what_was_typed_and_folds_spaces(typed: str, kept: str) -> None:
    assert clean_name(typed) == kept


def test_clean_name_composes_decomposed_vietnamese() -> None:
    decomposed = unicodedata.normalize("NFD", "Nguyễn Thị Hằng")
    assert decomposed != "Nguyễn Thị Hằng"
    cleaned = clean_name(decomposed)
    assert cleaned == "Nguyễn Thị Hằng"
    assert unicodedata.is_normalized("NFC", cleaned)


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "A",
        " B ",
        "12345",
        "0912 345 678",
        "😀😀",
        "--",
        "Nguyễn\x00Văn",
        "Lê\x07Anh",
        "Trần\x1b[31mAn",
        "Hà\x7fNội",
        # Spreadsheet programs read these as formulas; no Vietnamese name starts so.
        '=HYPERLINK("http://evil.example/x","Bấm vào đây")',
        "+Nguyễn Văn An",
        "-Nguyễn Văn An",
        "@Nguyễn Văn An",
        "  =Lê Văn Bình",
    ],
)
def test_clean_name_refuses(typed: str) -> None:
    with pytest.raises(ContestError) as caught:
        clean_name(typed)
    assert error_code(caught) == "name_invalid"


def test_clean_name_length_limit_is_one_hundred() -> None:
    assert clean_name("a" * 100) == "a" * 100
    assert clean_name(" " + "a" * 100 + " ") == "a" * 100
    with pytest.raises(ContestError):
        clean_name("a" * 101)


def test_clean_name_counts_length_after_folding_spaces() -> None:
    name = "An" + " " * 200 + "Bình"
    assert clean_name(name) == "An Bình"


# ---------------------------------------------------------------- birth date


@pytest.mark.parametrize(
    ("typed", "born"),
    [
        ("15/03/1990", date(1990, 3, 15)),
        ("5/3/1990", date(1990, 3, 5)),
        ("05-03-1990", date(1990, 3, 5)),
        ("5.3.1990", date(1990, 3, 5)),
        (" 29/02/2000 ", date(2000, 2, 29)),
        ("01/08/2024", TODAY),
        ("31/12/1999", date(1999, 12, 31)),
    ],
)
def test_parse_birth_date_accepts(typed: str, born: date) -> None:
    assert parse_birth_date(typed, TODAY) == born


def test_birth_date_is_day_first() -> None:
    assert parse_birth_date("02/03/1990", TODAY) == date(1990, 3, 2)


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("31/02/1990", "birth_date_impossible"),
        ("29/02/2001", "birth_date_impossible"),
        ("32/01/1990", "birth_date_impossible"),
        ("10/13/1990", "birth_date_impossible"),
        ("00/01/1990", "birth_date_impossible"),
        ("01/01/1800", "birth_date_impossible"),
        ("01/01/1900", "birth_date_impossible"),
        ("02/08/2024", "birth_date_future"),
        ("01/01/2030", "birth_date_future"),
        ("1990-03-15", "birth_date_format"),
        ("15/03/90", "birth_date_format"),
        ("15 03 1990", "birth_date_format"),
        ("15031990", "birth_date_format"),
        ("ngày 15/03/1990", "birth_date_format"),
        ("", "birth_date_format"),
        ("abc", "birth_date_format"),
    ],
)
def test_parse_birth_date_refuses(typed: str, code: str) -> None:
    with pytest.raises(ContestError) as caught:
        parse_birth_date(typed, TODAY)
    assert error_code(caught) == code


def test_a_plausible_oldest_age_is_accepted() -> None:
    assert parse_birth_date("01/08/1904", TODAY) == date(1904, 8, 1)  # exactly 120
    with pytest.raises(ContestError) as caught:
        parse_birth_date("31/07/1903", TODAY)  # 121
    assert error_code(caught) == "birth_date_impossible"


# ---------------------------------------------------------------- phone


@pytest.mark.parametrize(
    "typed",
    [
        "0912345678",
        "84912345678",
        "+84912345678",
        "+84 912 345 678",
        "091-234-5678",
        "(+84) 91.234.5678",
        " 0912 345 678 ",
    ],
)
def test_normalize_phone_gives_one_form(typed: str) -> None:
    assert normalize_phone(typed) == "+84912345678"


def test_normalize_phone_keeps_foreign_numbers() -> None:
    assert normalize_phone("+1 650 555 0100") == "+16505550100"


@pytest.mark.parametrize("typed", ["", "abc", "1234567", "+1234567890123456", "phone"])
def test_normalize_phone_refuses(typed: str) -> None:
    with pytest.raises(ContestError) as caught:
        normalize_phone(typed)
    assert error_code(caught) == "phone_invalid"


# ---------------------------------------------------------------- age


def test_age_on_birthday_today_counts_the_full_year() -> None:
    assert age_on(date(2006, 8, 1), date(2024, 8, 1)) == 18
    assert age_on(date(2006, 8, 2), date(2024, 8, 1)) == 17
    assert age_on(date(2006, 7, 31), date(2024, 8, 1)) == 18


def test_age_on_the_day_of_birth_is_zero() -> None:
    assert age_on(date(2024, 8, 1), date(2024, 8, 1)) == 0


def test_age_on_the_day_before_a_birthday_in_an_earlier_month() -> None:
    assert age_on(date(2000, 12, 31), date(2024, 1, 1)) == 23
    assert age_on(date(2000, 1, 1), date(2023, 12, 31)) == 23


def test_age_for_29_february_in_a_non_leap_year() -> None:
    born = date(2004, 2, 29)
    assert age_on(born, date(2022, 2, 28)) == 17
    assert age_on(born, date(2022, 3, 1)) == 18


def test_age_for_29_february_in_a_leap_year() -> None:
    born = date(2004, 2, 29)
    assert age_on(born, date(2024, 2, 28)) == 19
    assert age_on(born, date(2024, 2, 29)) == 20


# ---------------------------------------------------------------- draft


def complete_civil_servant() -> Draft:
    return Draft(
        step=Step.CONFIRM,
        consent=True,
        full_name="Nguyễn Văn An",
        birth_date=date(1985, 4, 30),
        phone="+84912345678",
        group=Group.CIVIL_SERVANT,
        unit_kind=UnitKind.DEPARTMENT,
        unit_id=7,
        position=Position.LEADER,
    )


def complete_citizen() -> Draft:
    return Draft(
        step=Step.CONFIRM,
        consent=True,
        full_name="Trần Thị Bình",
        birth_date=date(1999, 1, 2),
        phone="+84987654321",
        group=Group.CITIZEN,
        ward_id=33,
    )


@pytest.mark.parametrize(
    "draft",
    [Draft(), complete_civil_servant(), complete_citizen(), Draft(step=Step.WARD, editing=True)],
)
def test_draft_round_trips_through_a_dict(draft: Draft) -> None:
    assert Draft.from_dict(draft.to_dict()) == draft


@pytest.mark.parametrize("draft", [Draft(), complete_civil_servant(), complete_citizen()])
def test_draft_round_trips_through_json(draft: Draft) -> None:
    stored = json.dumps(draft.to_dict())
    restored = Draft.from_dict(json.loads(stored))
    assert restored == draft
    assert type(restored.step) is Step
    if restored.group is not None:
        assert type(restored.group) is Group
    if restored.birth_date is not None:
        assert type(restored.birth_date) is date


def test_draft_dict_holds_plain_values() -> None:
    data = complete_civil_servant().to_dict()
    assert data["birth_date"] == "1985-04-30"
    assert data["step"] == "confirm"
    assert data["group"] == "civil_servant"
    assert data["unit_kind"] == "phong_ban"
    assert data["position"] == "leader"


def test_draft_from_dict_ignores_unknown_keys_and_fills_defaults() -> None:
    draft = Draft.from_dict({"step": "phone", "consent": True, "obsolete": 1})
    assert draft == Draft(step=Step.PHONE, consent=True)


@pytest.mark.parametrize(
    ("draft", "missing"),
    [
        (Draft(), Step.CONSENT),
        (Draft(consent=True), Step.NAME),
        (Draft(consent=True, full_name="An Bình"), Step.BIRTH_DATE),
        (Draft(consent=True, full_name="An Bình", birth_date=date(1990, 1, 1)), Step.PHONE),
        (
            Draft(consent=True, full_name="An Bình", birth_date=date(1990, 1, 1), phone="+84"),
            Step.GROUP,
        ),
    ],
)
def test_missing_step_in_order(draft: Draft, missing: Step) -> None:
    assert draft.missing_step() is missing


def test_missing_step_of_a_civil_servant() -> None:
    draft = complete_civil_servant()
    assert draft.missing_step() is None
    draft.position = None
    assert draft.missing_step() is Step.POSITION
    draft.unit_id = None
    assert draft.missing_step() is Step.UNIT_KIND


def test_missing_step_of_a_citizen() -> None:
    draft = complete_citizen()
    assert draft.missing_step() is None
    draft.ward_id = None
    assert draft.missing_step() is Step.WARD


def test_advance_follows_the_natural_order_when_not_editing() -> None:
    draft = Draft(consent=True, step=Step.NAME)
    draft.full_name = "An Bình"
    draft.advance(Step.BIRTH_DATE)
    assert draft.step is Step.BIRTH_DATE
    assert draft.editing is False


def test_advance_when_editing_a_complete_draft_returns_to_confirm() -> None:
    draft = complete_civil_servant()
    draft.step, draft.editing = EDITABLE["name"], True
    draft.full_name = "Nguyễn Văn Bình"
    draft.advance(Step.BIRTH_DATE)
    assert draft.step is Step.CONFIRM
    assert draft.editing is False


def test_advance_when_editing_goes_to_what_the_edit_left_missing() -> None:
    draft = complete_citizen()
    draft.step, draft.editing = EDITABLE["group"], True
    # Switching to civil servant: the unit and then the position are now missing.
    draft.group, draft.ward_id = Group.CIVIL_SERVANT, None
    draft.advance(Step.UNIT_KIND)
    assert draft.step is Step.UNIT_KIND
    assert draft.editing is True
    draft.unit_kind, draft.unit_id = UnitKind.WARD, 5
    draft.advance(Step.POSITION)
    assert draft.step is Step.POSITION
    assert draft.editing is True
    draft.position = Position.STAFF
    draft.advance(Step.CONFIRM)
    assert draft.step is Step.CONFIRM
    assert draft.editing is False
    assert draft.missing_step() is None


def test_editable_fields_point_at_their_steps() -> None:
    assert EDITABLE == {
        "name": Step.NAME,
        "birth_date": Step.BIRTH_DATE,
        "phone": Step.PHONE,
        "group": Step.GROUP,
        "unit": Step.UNIT_KIND,
        "position": Step.POSITION,
        "ward": Step.WARD,
    }


def test_check_age_refuses_an_under_age_citizen_only() -> None:
    young = complete_citizen()
    young.birth_date = date(2006, 8, 2)
    with pytest.raises(ContestError) as caught:
        young.check_age(TODAY, 18)
    assert error_code(caught) == "citizen_under_age"
    assert caught.value.params == {"min_age": 18}
    young.birth_date = date(2006, 8, 1)  # eighteen today
    young.check_age(TODAY, 18)
    servant = complete_civil_servant()
    servant.birth_date = date(2008, 1, 1)
    servant.check_age(TODAY, 18)  # the age rule is for citizens
