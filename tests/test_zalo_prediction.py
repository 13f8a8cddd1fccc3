"""The prediction question on Zalo (``tie_break = ["prediction", "time"]``), end to end
through the fake Zalo Bot API: after the last answer the person types a whole number; bad
input gets a hint and changes nothing; a number is not taken for a numbered choice; an
attempt left without a prediction is asked again by "thi", and its result comes from the
outbox once its time is over."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from contest.model import Account
from contest.rules import DEFAULT_PREDICTION_QUESTION, ContestRules, TieBreak
from fakes.zalo import FakeZaloApi, FakeZaloUser, ZaloMessage
from storage import models as m
from tests.test_zalo_e2e import (
    ZaloRunner,
    answer_all,
    attempts_of,
    correct_label,
    has,
    open_exam,
    position_of,
    say,
    seeded_url,
)
from tests.test_zalo_round2 import add_zalo_person


@pytest.fixture
def rules(rules: ContestRules) -> ContestRules:
    return replace(
        rules,
        tie_break=(TieBreak.PREDICTION, TieBreak.TIME),
        prediction_question=DEFAULT_PREDICTION_QUESTION,
    )


@pytest.fixture
async def zalo_api() -> AsyncIterator[FakeZaloApi]:
    async with FakeZaloApi() as api:
        yield api


@pytest.fixture
async def zbot(
    zalo_api: FakeZaloApi, rules: ContestRules, clock: ManualClock, database_url: str
) -> AsyncIterator[ZaloRunner]:
    runner = ZaloRunner(zalo_api, rules, clock, await seeded_url(database_url, rules, clock))
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


async def predictions(engine: AsyncEngine, account: Account) -> list[int | None]:
    rows = await attempts_of(engine, account)
    async with engine.connect() as conn:
        found = await conn.execute(
            select(m.AttemptRow.id, m.AttemptRow.prediction).where(
                m.AttemptRow.id.in_([r.id for r in rows])
            )
        )
        by_id = dict(found.all())
    return [by_id[r.id] for r in rows]


async def answer_to_the_end(
    engine: AsyncEngine, user: FakeZaloUser, card: ZaloMessage, attempt_id: int
) -> ZaloMessage:
    """Answer the 20 questions (all right); the message after the last answer."""
    last = await answer_all(engine, user, card, attempt_id, [True] * 19)
    assert position_of(last) == 19
    await user.send_text(await correct_label(engine, attempt_id, 19))
    return await user.wait_for(has("CÂU HỎI DỰ ĐOÁN"))


async def test_the_prediction_is_typed_after_the_last_answer(
    zbot: ZaloRunner, zalo_api: FakeZaloApi, clock: ManualClock, rules: ContestRules
):
    assert zbot.process is not None
    account = await add_zalo_person(zbot.process.service, "z-du", "Phạm Dự Đoán", 7)
    user = zalo_api.user("z-du", "Dự")
    card = await open_exam(user)
    attempt = (await attempts_of(zbot.engine, account))[0].id
    ask = await answer_to_the_end(zbot.engine, user, card, attempt)
    assert "Bạn đã trả lời hết 20 câu hỏi" in ask.text
    assert DEFAULT_PREDICTION_QUESTION.split()[0] in ask.text
    assert "gõ một số nguyên" in ask.text and "⏱ Còn lại" in ask.text
    assert "hoàn thành bài thi" not in ask.text  # the result follows the prediction

    # Bad input: a hint, nothing recorded; a letter is no answer any more.
    for typed in ("khoảng một nghìn", "-5", "12,5", "a"):
        hint = await say(user, typed, "một số nguyên không âm")
        assert "chưa có gì được ghi nhận" in hint.text
    assert await predictions(zbot.engine, account) == [None]

    # A number (grouped by thousands, as people write it) is the prediction.
    done = await say(user, "1.234", "hoàn thành bài thi")
    assert "bạn đã trả lời 1.234" in done.text and "20/20" in done.text
    assert "1. 💬 Góp ý về bài thi" in done.text
    assert await predictions(zbot.engine, account) == [1234]
    # Once recorded, a number is a numbered choice again, not a second prediction.
    await say(user, "5", "Không có lựa chọn số 5")
    assert await predictions(zbot.engine, account) == [1234]

    # The second attempt is left without a prediction: "thi" asks again; once the time is
    # over, the result comes from the outbox, without a prediction.
    card = await open_exam(user)
    attempt2 = (await attempts_of(zbot.engine, account))[1].id
    await answer_to_the_end(zbot.engine, user, card, attempt2)
    again = await say(user, "thi", "CÂU HỎI DỰ ĐOÁN")
    assert "Bạn đã trả lời hết" not in again.text
    mark = user.mark()
    clock.advance(minutes=rules.round1.minutes + 1)
    result = await user.wait_for(has("Lần thi 2"), since=mark, timeout=8)
    assert "20/20" in result.text
    # Too late: not a prediction (a hint about numbered choices; the result's choice may be
    # remembered just after its message reached the person).
    await user.send_text("77")
    late = await user.wait_for(lambda msg: "để chọn" in msg.text or "lựa chọn" in msg.text)
    assert "không" in late.text.lower() and "ghi nhận" not in late.text
    assert await predictions(zbot.engine, account) == [1234, None]
