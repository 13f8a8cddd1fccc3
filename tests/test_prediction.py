"""The tie rule with the prediction question (``tie_break = ["prediction", "time"]``):

* the contest file: the default rule, the prediction rule with its default question,
  invalid values refused at start-up;
* end to end through the fake Bot API: the last answer brings the prediction question, a
  bad number gets a hint and changes nothing, a whole number is stored and the result
  shown; a deadline passing first leaves the attempt without a prediction and the outbox
  sends its result;
* /dapandudoan: refused for a contestant and while round 1 may still run, audited, stored
  as ``prediction_official``;
* the ranking (/bxh, ``Results.ranking``, the counting attempts, the export) by most
  correct, then the closest prediction, then the shorter time, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select

from bot.config import ConfigError, parse_rules
from contest.clock import ManualClock
from contest.model import Account
from contest.ports import ExportRequest
from contest.rules import DEFAULT_PREDICTION_QUESTION, ContestRules, QuotaRules, TieBreak
from contest.scoring import TIME_ONLY
from contest.services import ContestService
from contest.usecases.predictions import OFFICIAL_KEY, parse_count
from fakes.telegram import FakeBotApi
from storage import models as m
from storage.export import CONTESTANTS, write_workbook
from tests.conftest import ROOT, BotRunner, has, say
from tests.test_console_staff import ADMIN, audit_rows
from tests.test_console_stats import add_person, stats_bot, take_exam
from tests.test_e2e_exam import answer_questions, attempt_rows, engine_of, open_exam, registered

__all__ = ["stats_bot"]  # the fixture, shared with the statistics' tests

PREDICTING = ["prediction", "time"]


def contest_file(**ranking: Any) -> dict[str, Any]:
    data = tomllib.loads((ROOT / "contest.example.toml").read_text(encoding="utf-8"))
    data["ranking"] = ranking
    return data


@pytest.fixture
def rules() -> ContestRules:
    """The shipped example with the prediction rule on (overrides conftest's ``rules``)."""
    return parse_rules(contest_file(tie_break=PREDICTING))


# ------------------------------------------------------------------ the contest file


def test_the_shipped_file_keeps_the_time_rule():
    shipped = parse_rules(
        tomllib.loads((ROOT / "contest.example.toml").read_text(encoding="utf-8"))
    )
    assert shipped.tie_break == (TieBreak.TIME,) and not shipped.uses_prediction
    assert shipped.prediction_question == ""
    assert parse_rules(contest_file()).tie_break == (TieBreak.TIME,)


def test_the_prediction_rule_and_its_question():
    on = parse_rules(contest_file(tie_break=PREDICTING))
    assert on.tie_break == (TieBreak.PREDICTION, TieBreak.TIME) and on.uses_prediction
    assert on.prediction_question == DEFAULT_PREDICTION_QUESTION
    asked = parse_rules(
        contest_file(tie_break=PREDICTING, prediction_question="  Có bao nhiêu   người?")
    )
    assert asked.prediction_question == "Có bao nhiêu người?"


@pytest.mark.parametrize(
    ("ranking", "says"),
    [
        ({"tie_break": ["time", "prediction"]}, "ranking.tie_break phải là"),
        ({"tie_break": ["prediction"]}, "ranking.tie_break phải là"),
        ({"tie_break": "time"}, "ranking.tie_break phải là"),
        ({"tie_break": ["speed"]}, '["time"] hoặc ["prediction", "time"]'),
        ({"tie_break": []}, "ranking.tie_break phải là"),
        ({"tie_break": PREDICTING, "prediction_question": 5}, "phải là văn bản"),
    ],
)
def test_invalid_tie_rules_are_refused_at_start_up(ranking: dict[str, Any], says: str):
    with pytest.raises(ConfigError) as refused:
        parse_rules(contest_file(**ranking))
    assert says in str(refused.value)


def test_typed_counts():
    assert parse_count("1234") == 1234
    assert parse_count(" 1.234 ") == 1234
    assert parse_count("1 234 người") == 1234
    assert parse_count("0") == 0
    for bad in ("-5", "12.5", "abc", "", "1,23", "1e3", "²", "1000001", "١٢"):
        assert parse_count(bad) is None, bad


# ------------------------------------------------------------------ end to end


async def outbox_outcome(bot: BotRunner, attempt_id: int) -> str | None:
    """The outcome of an attempt's result notification, once it has one (5 s at most)."""
    outcome = None
    for _ in range(50):
        async with engine_of(bot).connect() as conn:
            outcome = await conn.scalar(
                select(m.OutboxRow.outcome).where(m.OutboxRow.key == f"attempt_result:{attempt_id}")
            )
        if outcome is not None:
            return str(outcome)
        await asyncio.sleep(0.1)
    return outcome


async def prediction_of(bot: BotRunner, telegram_id: int) -> list[int | None]:
    return [row.prediction for row in await attempt_rows(engine_of(bot), telegram_id)]


async def test_the_attempt_ends_with_the_prediction_question(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    user = await registered(bot, fake_api, 2101, "0910002101")
    card = await open_exam(user)
    attempt_id = (await attempt_rows(engine_of(bot), 2101))[0].id
    clock.advance(minutes=5)
    asked = await answer_questions(bot, user, card, attempt_id, [True] * 12 + [False] * 8)
    assert "CÂU HỎI DỰ ĐOÁN" in asked.text and DEFAULT_PREDICTION_QUESTION in asked.text
    assert "Bạn đã trả lời hết 20 câu hỏi" in asked.text
    assert asked.buttons == [] and "hoàn thành bài thi" not in asked.text
    rows = await attempt_rows(engine_of(bot), 2101)
    assert rows[0].status == "submitted" and rows[0].correct_count == 12
    assert rows[0].duration_seconds == 5 * 60  # the time is the answers'

    # /thi while it waits: the question again, no new attempt.
    again = await say(user, "/thi", "CÂU HỎI DỰ ĐOÁN")
    assert "gõ một số nguyên" in again.text

    # Bad numbers: a hint, nothing changes.
    for bad in ("khoảng một trăm", "-3", "12,5", "99999999"):
        hint = await say(user, bad, "số nguyên không âm")
        assert "chưa có gì được ghi nhận" in hint.text
        assert await prediction_of(bot, 2101) == [None]

    result = await say(user, "1.234", "hoàn thành bài thi")
    assert "bạn dự đoán 1.234" in result.text and "12/20" in result.text
    assert result.buttons == [["💬 Góp ý về bài thi"]]
    assert await prediction_of(bot, 2101) == [1234]
    assert "bạn đã trả lời 1.234" in user.message(card.message_id).text
    # Shown in the reply: the outbox does not send it again (marked just after the reply).
    assert await outbox_outcome(bot, attempt_id) == "inline"

    # Typed again: no attempt waits for a prediction; the first one stays.
    await say(user, "5", "chưa hiểu")
    assert await prediction_of(bot, 2101) == [1234]
    shown = await say(user, "/ketqua", "KẾT QUẢ VÒNG 1")
    assert "12/20 câu đúng" in shown.text and "dự đoán 1.234" in shown.text


async def test_the_deadline_before_the_prediction_leaves_the_attempt_without_one(
    bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock
):
    user = await registered(bot, fake_api, 2102, "0910002102")
    card = await open_exam(user)
    attempt_id = (await attempt_rows(engine_of(bot), 2102))[0].id
    clock.advance(minutes=18)
    await answer_questions(bot, user, card, attempt_id, [True] * 20)
    clock.advance(minutes=2, seconds=10)  # past the deadline and the result's grace
    result = await user.wait_for_new_message(timeout=5, predicate=has("hoàn thành bài thi"))
    assert "20/20" in result.text and "không có câu trả lời" in result.text
    retired = user.message(card.message_id)
    assert "đã kết thúc" in retired.text and retired.buttons == []
    # A number typed now changes nothing.
    await say(user, "77", "chưa hiểu")
    assert await prediction_of(bot, 2102) == [None]
    rows = await attempt_rows(engine_of(bot), 2102)
    assert rows[0].status == "submitted" and rows[0].correct_count == 20


# ------------------------------------------------------------------ ranking and /dapandudoan


async def finish_with(
    service: ContestService,
    clock: ManualClock,
    account: Account,
    correct: int,
    seconds: float,
    prediction: str | None,
) -> int:
    attempt_id = await take_exam(service, clock, account, correct, seconds)
    if prediction is not None:
        summary = await service.exams.predict(account, prediction)
        assert summary is not None and summary.result.prediction == parse_count(prediction)
    return attempt_id


async def test_dapandudoan_is_refused_then_entered_and_the_ranking_follows_it(
    stats_bot: BotRunner, fake_api: FakeBotApi, clock: ManualClock, rules: ContestRules
):
    service = stats_bot.service
    names = ["Lê Văn Một", "Lê Văn Hai", "Lê Văn Ba", "Lê Văn Bốn", "Lê Văn Năm"]
    people = [
        await add_person(service, n, name, unit_code="T-DU30")
        for n, name in enumerate(names, start=1)
    ]
    one, two, three, four, five = people
    # Equal correct answers: the closest prediction first, then the shorter time; the
    # time-only order would be Năm, Một, Ba, Hai (and Bốn first with more correct).
    await finish_with(service, clock, one, 15, 100, "990")  # 10 away, fast
    await finish_with(service, clock, two, 15, 400, "1.000")  # exact, slow
    await finish_with(service, clock, three, 15, 300, "1010")  # 10 away, slower than Một
    await finish_with(service, clock, four, 18, 900, None)  # more correct: first
    await finish_with(service, clock, five, 15, 50, None)  # fastest, no prediction: last
    # Một's second attempt: as many correct, slower, closer: it counts once the figure is in.
    second = await finish_with(service, clock, one, 15, 600, "1001")

    admin = fake_api.user(ADMIN, first_name="Trưởng ban")
    contestant = fake_api.user(80_002, first_name="Hai")
    await say(contestant, "/dapandudoan 1000", "chỉ dành cho Ban Tổ chức")
    refused = await say(admin, "/dapandudoan 1000", "Vòng 1 chưa kết thúc")
    assert "đóng lúc 00:00 ngày 16/08/2024" in refused.text
    assert "00:20 ngày 16/08/2024" in refused.text and "Chưa có gì thay đổi" in refused.text
    async with service.uow(write=False) as uow:
        assert await uow.state.get(OFFICIAL_KEY) is None

    # Before the figure: predictions separate nobody (the time decides among equals).
    before = await service.results.ranking(1)
    assert [r.result.person_id for r in before][:2] == [
        await pid(service, four),
        await pid(service, five),
    ]
    board = await say(admin, "/bxh", "BẢNG XẾP HẠNG")
    assert "chưa có đáp án chính thức" in board.text

    clock.set(rules.round1.window.closes + rules.round1.duration)
    shown = await say(admin, "/dapandudoan", "CÂU HỎI DỰ ĐOÁN")
    assert "Chưa có đáp án chính thức" in shown.text
    assert "Lần thi đã hoàn thành: 6; có dự đoán: 4; không có dự đoán: 2" in shown.text
    bad = await say(admin, "/dapandudoan mười", "không phải số nguyên hợp lệ")
    assert "“mười”" in bad.text
    saved = await say(admin, "/dapandudoan 1.000", "Đã lưu đáp án chính thức")
    assert "Đã lưu đáp án chính thức: 1.000" in saved.text
    async with service.uow(write=False) as uow:
        assert await uow.state.get(OFFICIAL_KEY) == "1000"  # int as text, as round 2 reads it

    ranked = await service.results.ranking(1)
    expected = [four, two, one, three, five]
    assert [r.result.person_id for r in ranked] == [await pid(service, a) for a in expected]
    assert [r.rank for r in ranked] == [1, 2, 3, 4, 5]
    assert ranked[2].result.attempt_id == second  # Một's closer attempt counts
    async with engine_of(stats_bot).connect() as conn:
        counting = (
            (await conn.execute(select(m.AttemptRow.id).where(m.AttemptRow.counting.is_(True))))
            .scalars()
            .all()
        )
    assert second in counting and len(counting) == 5

    board = await say(admin, "/bxh", "BẢNG XẾP HẠNG")
    order = [line for line in board.text.splitlines() if "Lê Văn" in line]
    assert [line.split(" ", 1)[1].split(" —")[0] for line in order] == [
        "Lê Văn Bốn",
        "Lê Văn Hai",
        "Lê Văn Một",
        "Lê Văn Ba",
        "Lê Văn Năm",
    ]
    assert "dự đoán 1.001" in order[2] and "không dự đoán" in order[4]
    assert "đáp án chính thức 1.000" in board.text

    # A correction: audited with the figure it replaces; Một and Ba are now tied ahead.
    await say(admin, "/dapandudoan 1005", "Thay cho con số đã nhập trước đó: 1.000")
    # Một's 1001 is 4 away; Ba (1010) and Hai (1000) are both 5 away: Ba's shorter time.
    ranked = await service.results.ranking(1)
    expected = [four, one, three, two, five]
    assert [r.result.person_id for r in ranked] == [await pid(service, a) for a in expected]
    rows = await audit_rows(stats_bot)
    mine = [(r.action, r.outcome) for r in rows if r.action == "dapandudoan"]
    assert mine == [
        ("dapandudoan", "refused"),
        ("dapandudoan", "failed"),
        ("dapandudoan", "failed"),
        ("dapandudoan", "ok"),
        ("dapandudoan", "ok"),
    ]
    last = [r for r in rows if r.action == "dapandudoan"][-1]
    assert last.target == "1005" and '"previous": 1000' in (last.detail or "")


async def pid(service: ContestService, account: Account) -> int:
    async with service.uow(write=False) as uow:
        person = await uow.persons.by_account(account)
    assert person is not None
    return person.id


async def test_equal_scores_share_a_rank_and_the_export_follows_the_rule(
    stats_bot: BotRunner,
    fake_api: FakeBotApi,
    clock: ManualClock,
    rules: ContestRules,
    tmp_path: Path,
):
    service = stats_bot.service
    a = await add_person(service, 11, "Phạm Thị A", unit_code="T-DU30")
    b = await add_person(service, 12, "Phạm Thị B", unit_code="T-DU30")
    c = await add_person(service, 13, "Phạm Thị C", unit_code="T-DU30")
    await finish_with(service, clock, a, 10, 300, "95")  # 5 away
    await finish_with(service, clock, b, 10, 300, "105")  # 5 away, same time: tied with A
    await finish_with(service, clock, c, 10, 100, "200")  # fastest, far: last
    clock.set(rules.round1.window.closes + timedelta(hours=1))
    admin = await service.staff.actor(Account.telegram(ADMIN), "Trưởng ban")
    await service.predictions.set_official(admin, "100")

    board = await service.results.leaderboard(1)
    assert [(p.standing.rank, p.tied) for p in board.rows] == [(1, True), (1, True), (3, False)]
    assert board.rows[2].standing.full_name == "Phạm Thị C"
    # The old time-only order would put C first.
    old = await service.results.leaderboard(1, rule=TIME_ONLY)
    assert old.rows[0].standing.full_name == "Phạm Thị C"

    rule = await service.results.tie_rule()
    assert rule.official == 100
    assert (await service.results.tie_rule(2)).official is None  # round 1's figure only
    path = tmp_path / "du-lieu.xlsx"
    request = ExportRequest(
        1,
        QuotaRules(),
        clock.now(),
        tie_break=tuple(b.value for b in rule.breaks),
        official=rule.official,
    )
    await write_workbook(engine_of(stats_bot), request, path)
    book = openpyxl.load_workbook(path)
    rows = [tuple(r) for r in book[CONTESTANTS].iter_rows(values_only=True)][1:]
    ranked = [(r[0], r[2], r[-1]) for r in rows if r[0] is not None]
    assert sorted(ranked[:2]) == [(1, "Phạm Thị A", 95), (1, "Phạm Thị B", 105)]
    assert ranked[2] == (3, "Phạm Thị C", 200)


async def test_a_question_fix_after_the_official_figure_keeps_the_rule_s_counting_attempt(
    stats_bot: BotRunner, clock: ManualClock, rules: ContestRules
):
    """A key corrected once the official figure is in: the counting attempts are flagged
    again by the rule in force (closest prediction), not by time, so the export (which reads
    the flag) agrees with /bxh."""
    from contest.ports import FIX_KEY, FIX_VOID
    from contest.usecases.fixes import Change

    service = stats_bot.service
    person = await add_person(service, 21, "Đỗ Văn Dự", unit_code="T-DU30")
    close = await finish_with(service, clock, person, 15, 600, "100")  # slower, closer
    fast = await finish_with(service, clock, person, 15, 500, "900")  # faster, far
    clock.set(rules.round1.window.closes + timedelta(hours=1))
    admin = await service.staff.actor(Account.telegram(ADMIN), "Trưởng ban")
    await service.predictions.set_official(admin, "120")

    engine = engine_of(stats_bot)

    async def counting() -> set[int]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(m.AttemptRow.id).where(m.AttemptRow.counting.is_(True))
            )
            return set(rows.scalars())

    assert await counting() == {close}
    # A question both attempts drew and answered the same way: a new key moves both alike.
    async with engine.connect() as conn:
        items = (
            await conn.execute(
                select(
                    m.AttemptItemRow.attempt_id,
                    m.AttemptItemRow.question_id,
                    m.AttemptItemRow.correct,
                ).where(m.AttemptItemRow.attempt_id.in_([close, fast]))
            )
        ).all()
    by_question: dict[int, dict[int, bool | None]] = {}
    for attempt_id, question_id, correct in items:
        by_question.setdefault(question_id, {})[attempt_id] = correct
    # A question both drew and answered alike: a new key (both right) or voiding it (both
    # wrong) moves both attempts alike, so they stay equal on correct answers.
    shared = [
        (q, seen[close])
        for q, seen in sorted(by_question.items())
        if len(seen) == 2 and seen[close] == seen[fast]
    ]
    if not shared:
        pytest.skip("the two attempts drew no question they answered alike")
    question_id, right = shared[0]
    async with service.uow(write=False) as uow:
        catalog = {q.id: q for q in await uow.questions.catalog(include_inactive=True)}
    question = catalog[question_id]
    change = Change(FIX_KEY, key=(question.answer + 1) % 3) if right else Change(FIX_VOID)
    preview = await service.fixes.prepare(admin, question_id, change)
    await service.fixes.confirm(admin, preview.token)
    assert await counting() == {close}  # the time rule would flag the faster one
    assert (await service.results.ranking(1))[0].result.attempt_id == close
