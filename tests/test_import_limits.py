"""The import limits hold where they matter: the largest exam card fits one message on
Telegram and on Zalo, and the active bank never grows past MAX_BANK_QUESTIONS."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from contest.errors import ContestError
from contest.importing import (
    MAX_BANK_QUESTIONS,
    MAX_OPTION_LEN,
    MAX_QUESTION_LEN,
    MAX_TOPIC_LEN,
    QuestionRow,
)
from contest.rules import ContestRules
from contest.services import ContestService, ExamCard
from contest.ui import texts
from fakes.telegram import MAX_TEXT_LENGTH, parse_html, utf16_len
from storage.uow import SqlUnitOfWorkFactory

TELEGRAM_LIMIT = 4096
ZALO_LIMIT = 2000  # characters of one Zalo text message
ZALO_FRAME = 150  # what a text-only card adds around the question: header, prompt, footer


def filled(length: int, pattern: str) -> str:
    return (pattern * length)[:length]


def largest_card(rules: ContestRules, clock: ManualClock, pattern: str) -> ExamCard:
    round1 = rules.round1
    return ExamCard(
        attempt_id=10**9,
        attempt_number=round1.attempts,
        position=round1.questions - 1,
        total=round1.questions,
        topic=filled(MAX_TOPIC_LEN, pattern),
        text=filled(MAX_QUESTION_LEN, pattern),
        options=(
            filled(MAX_OPTION_LEN, pattern),
            filled(MAX_OPTION_LEN, pattern[::-1]),
            filled(MAX_OPTION_LEN, pattern + "x"),
        ),
        deadline_at=clock.now() + timedelta(minutes=round1.minutes),
        time_left_seconds=round1.minutes * 60.0,
        chat_id=1,
        message_id=1,
    )


@pytest.mark.parametrize(
    "pattern",
    ["&<>Ặ", "Ặ", "😀&", "Ữ\u0303&"],
    ids=["escaped", "vietnamese", "astral", "combining"],
)
def test_the_largest_card_fits_one_telegram_message(
    rules: ContestRules, clock: ManualClock, pattern: str
) -> None:
    card = largest_card(rules, clock, pattern)
    html = texts.card(card, rules.round1, clock.now())
    visible, _ = parse_html(html)
    assert MAX_TEXT_LENGTH == TELEGRAM_LIMIT
    assert utf16_len(visible) <= TELEGRAM_LIMIT
    assert card.topic in visible and card.text in visible  # nothing was cut to fit


def test_the_largest_card_fits_one_zalo_message() -> None:
    """Zalo (later) has no HTML: topic, question and the three options as plain text, with
    room for a header and a footer."""
    topic = "T" * MAX_TOPIC_LEN
    question = "Q" * MAX_QUESTION_LEN
    options = ["O" * MAX_OPTION_LEN] * 3
    lines = [topic, question, *(f"{label}. {o}" for label, o in zip("ABC", options, strict=True))]
    body = "\n".join(lines)
    assert len(body) + ZALO_FRAME <= ZALO_LIMIT


def rows(count: int, start: int = 0) -> list[QuestionRow]:
    return [
        QuestionRow("Chung", f"Câu hỏi số {n}?", ("Một", "Hai", "Ba"), n % 3)
        for n in range(start, start + count)
    ]


async def test_the_bank_cap_holds_across_imports(
    engine: AsyncEngine, rules: ContestRules, clock: ManualClock
) -> None:
    service = ContestService(SqlUnitOfWorkFactory(engine), clock, rules)
    summary = await service.console.import_questions(rows(MAX_BANK_QUESTIONS - 1))
    assert summary.created == MAX_BANK_QUESTIONS - 1
    with pytest.raises(ContestError) as refused:
        await service.console.import_questions(rows(2, start=MAX_BANK_QUESTIONS - 1))  # two new
    assert refused.value.code == "bank_too_large"
    assert refused.value.params == {"limit": MAX_BANK_QUESTIONS, "total": MAX_BANK_QUESTIONS + 1}
    assert texts.error(refused.value.code, **refused.value.params) == (
        "Ngân hàng câu hỏi chỉ được có tối đa 5000 câu hỏi đang dùng; sau lần nhập này sẽ có "
        "5001 câu. Không có câu hỏi nào được ghi. Hãy dùng --replace để tệp thay cả ngân "
        "hàng, hoặc bớt câu hỏi trong tệp."
    )
    async with SqlUnitOfWorkFactory(engine)() as uow:
        assert await uow.questions.count() == MAX_BANK_QUESTIONS - 1  # nothing written
    assert (
        await service.console.import_questions(rows(1, start=MAX_BANK_QUESTIONS - 1))
    ).created == 1
    updated = await service.console.import_questions(
        rows(10)
    )  # the same questions again: no growth
    assert (updated.created, updated.updated) == (0, 10)
    replaced = await service.console.import_questions(
        rows(MAX_BANK_QUESTIONS, start=10**6), replace=True
    )
    assert (replaced.created, replaced.withdrawn) == (MAX_BANK_QUESTIONS, MAX_BANK_QUESTIONS)
    async with SqlUnitOfWorkFactory(engine)() as uow:
        assert await uow.questions.count() == MAX_BANK_QUESTIONS


async def test_too_many_rows_are_refused_before_the_database(
    engine: AsyncEngine, rules: ContestRules, clock: ManualClock
) -> None:
    service = ContestService(SqlUnitOfWorkFactory(engine), clock, rules)
    with pytest.raises(ContestError) as refused:
        await service.console.import_questions(rows(MAX_BANK_QUESTIONS + 1), replace=True)
    assert refused.value.code == "bank_too_large"
    async with SqlUnitOfWorkFactory(engine)() as uow:
        assert await uow.questions.count() == 0
