"""Qualification, round 2 and prizes at the service layer, on the real repositories (SQLite
and PostgreSQL): the cut by the tie rule with a tie straddling it, the confirmation's
compare-and-set and its notifications, the service refusing round 2 to anyone not on the
confirmed list or without the session code, the code's rate limit, round-2 questions
avoiding round 1's, and prizes with a tie on a boundary that must be accepted explicitly."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import timedelta
from io import BytesIO

import openpyxl
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from contest.errors import ContestError
from contest.model import Account, Role
from contest.round2 import rank_band
from contest.rules import ContestRules, PrizeRules, TieBreak
from contest.selection import select_avoiding, select_questions
from contest.services import ContestService
from contest.ui.round2_notices import final_text, invite_text
from contest.usecases.prizes import PRIZE_NOTIFICATION
from contest.usecases.rounds import FINAL_NOTIFICATION, INVITE_NOTIFICATION, MODE_ALL, MODE_CUT
from contest.usecases.staff import Actor
from storage import models as m
from storage.prize_export import sheet_xlsx
from storage.uow import SqlUnitOfWorkFactory
from tests.test_console_stats import add_person, lock_directly, take_exam
from tests.test_domain_selection import make_bank

ORGANISER = Actor(Account.telegram(9001), Role.ORGANISER, name="Trưởng ban")


def small_rules(rules: ContestRules) -> ContestRules:
    """Three go on to round 2; one first, one second and one third prize."""
    return replace(
        rules,
        round2=replace(rules.round2, qualifiers=3),
        prizes=PrizeRules(first=1, second=1, third=1, consolation=0),
    )


async def take_round2(
    service: ContestService, clock: ManualClock, account: Account, correct: int, seconds: float
) -> int:
    """A whole round-2 attempt (the code typed already): ``correct`` right answers."""
    async with service.uow(write=False) as uow:
        bank = {q.text: q for q in await uow.questions.catalog(include_inactive=True)}
    card = await service.exams.start_attempt(account, 2)
    for position in range(card.total):
        question = bank[card.text]
        right = card.options.index(question.options[question.answer])
        choice = right if position < correct else (right + 1) % 3
        if position == card.total - 1:
            clock.advance(seconds=seconds)
        outcome = await service.exams.answer(account, card.attempt_id, position, choice)
        if outcome.next_card is not None:
            card = outcome.next_card
    return card.attempt_id


async def rows_of(engine: AsyncEngine, model: type[m.Base]) -> list[object]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(model))).all())


def test_rank_bands():
    assert rank_band(51, 10_000) == (51, 100)
    assert rank_band(100, 10_000) == (51, 100)
    assert rank_band(101, 10_000) == (101, 200)
    assert rank_band(333, 10_000) == (201, 500)
    assert rank_band(1_500, 10_000) == (1_001, 2_000)
    assert rank_band(60, 73) == (51, 73)  # the last band ends with the last rank
    assert rank_band(4, 6, first=3) == (4, 6)
    assert rank_band(3, 6, first=3) == (3, 3)  # tied at the cut, or under the share


async def test_qualification_round2_and_prizes_at_the_service(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock, database_url: str
):
    rules = small_rules(rules)
    service = ContestService(SqlUnitOfWorkFactory(seeded), clock, rules)
    people = {}
    for n, name, correct in [
        (1, "Một", 20),
        (2, "Hai", 18),
        (3, "Ba", 15),  # tied with Bốn (same correct, same time), submitted earlier
        (4, "Bốn", 15),
        (5, "Năm", 9),  # under 50%: not eligible
        (6, "Sáu", 20),  # locked: out
    ]:
        people[n] = await add_person(service, n, f"Người {name}", ward_code="P-CATLINH")
        await take_exam(service, clock, people[n], correct)
    people[7] = await add_person(service, 7, "Người Bảy", ward_code="P-CATLINH")
    await take_exam(service, clock, people[7], 12, finish=False)  # open at the close
    people[8] = await add_person(service, 8, "Người Tám", ward_code="P-CATLINH")  # no attempt
    await lock_directly(database_url, people[6])

    with pytest.raises(ContestError) as refused:
        await service.rounds.proposal()
    assert refused.value.code == "round1_not_closed"

    clock.set(rules.round1.window.closes + timedelta(minutes=1))
    with pytest.raises(ContestError) as refused:
        await service.rounds.proposal()
    assert (refused.value.code, refused.value.params) == ("round1_attempts_open", {"count": 1})
    assert await service.exams.close_expired()  # the sweep closes it
    proposal = await service.rounds.proposal()
    names = {pid: label.full_name for pid, label in proposal.labels.items()}
    assert [names[r.result.person_id] for r in proposal.qualified] == [
        "Người Một",
        "Người Hai",
        "Người Ba",
    ]
    assert proposal.tie is not None
    assert [names[r.result.person_id] for r in proposal.tie.inside] == ["Người Ba"]
    assert [names[r.result.person_id] for r in proposal.tie.outside] == ["Người Bốn"]
    assert (proposal.ranked, proposal.eligible) == (6, 5)  # Sáu locked; Năm under 50%

    # A stale or forged fingerprint changes nothing.
    with pytest.raises(ContestError) as refused:
        await service.rounds.confirm_qualifiers(ORGANISER, "0" * 12, MODE_CUT)
    assert refused.value.code == "qualifiers_stale"
    with pytest.raises(ContestError):
        await service.rounds.confirm_qualifiers(ORGANISER, proposal.digest_cut, MODE_ALL)
    assert await rows_of(seeded, m.QualifierRow) == []

    done = await service.rounds.confirm_qualifiers(ORGANISER, proposal.digest_cut, MODE_CUT)
    assert (done.qualifiers, done.others) == (3, 3)  # Bốn, Bảy, Năm told their result
    with pytest.raises(ContestError) as refused:
        await service.rounds.confirm_qualifiers(ORGANISER, proposal.digest_cut, MODE_CUT)
    assert refused.value.code == "qualifiers_already_confirmed"
    assert len(await rows_of(seeded, m.QualifierRow)) == 3
    async with seeded.connect() as conn:
        outbox = (await conn.execute(select(m.OutboxRow.kind, m.OutboxRow.payload))).all()
        audit = (
            await conn.execute(select(m.AuditRow).where(m.AuditRow.action == "qualifiers_confirm"))
        ).all()
    assert sorted(k for k, _ in outbox if k == INVITE_NOTIFICATION) == [INVITE_NOTIFICATION] * 3
    finals = [json.loads(p) for k, p in outbox if k == FINAL_NOTIFICATION]
    assert sorted((f["correct"], tuple(f["band"])) for f in finals) == [
        (9, (4, 6)),
        (12, (4, 6)),
        (15, (3, 3)),  # Bốn shares rank 3 with Ba
    ]
    assert len(audit) == 1
    told = {f["correct"]: final_text(rules, f) for f in finals}
    assert "trong nhóm hạng 4–6 trên tổng số 6 thí sinh" in told[12]
    assert "Xếp hạng: 3 trên tổng số 6" in told[15] and "nộp bài sớm hơn được chọn" in told[15]
    assert "trả lời đúng từ 50% trở lên" in told[9]
    # The example file does not decide round 2's date: nothing presents it as decided.
    assert not rules.round2.scheduled
    invite = invite_text(rules, 1, 20, 20)
    assert "sẽ thông báo sau" in invite and "05/09/2024" not in invite
    decided = replace(rules, round2=replace(rules.round2, scheduled=True, venue="Hội trường"))
    assert "05/09/2024" in invite_text(decided, 1, 20, 20)

    # ---------------------------------------------------------------- round 2
    clock.set(rules.round2.round.window.opens + timedelta(minutes=1))
    for outsider in (people[4], people[8]):  # tied at the cut; never took part
        with pytest.raises(ContestError) as refused:
            await service.exams.start_attempt(outsider, 2)
        assert refused.value.code == "round2_not_qualified"
        with pytest.raises(ContestError) as refused:
            await service.rounds.enter_code(outsider, "DD2024")
        assert refused.value.code == "round2_not_qualified"
    with pytest.raises(ContestError) as refused:
        await service.exams.start_attempt(people[1], 2)
    assert refused.value.code == "round2_code_not_set"

    with pytest.raises(ContestError) as refused:
        await service.rounds.set_code(ORGANISER, "ab")
    assert refused.value.code == "code_format"
    assert await service.rounds.set_code(ORGANISER, "dd 2024") == "DD2024"
    with pytest.raises(ContestError) as refused:
        await service.exams.start_attempt(people[1], 2)
    assert refused.value.code == "round2_code_needed"
    async with seeded.connect() as conn:
        stored = await conn.scalar(
            select(m.ContestStateRow.value).where(m.ContestStateRow.key == "round2:code")
        )
        audited = (
            await conn.execute(select(m.AuditRow.detail).where(m.AuditRow.action == "round2_code"))
        ).all()
    assert stored is not None and "DD2024" not in stored and "hash" in stored
    assert all("DD2024" not in str(row) for row in audited)

    codes = []
    for _ in range(6):
        with pytest.raises(ContestError) as wrong:
            await service.rounds.enter_code(people[1], "SAI999")
        codes.append((wrong.value.code, wrong.value.params))
    assert codes[:4] == [("code_wrong", {"left": n}) for n in (4, 3, 2, 1)]
    assert codes[4] == ("code_wrong_last", {"minutes": 10})
    assert codes[5] == ("code_rate_limited", {"minutes": 10, "tries": 5})
    with pytest.raises(ContestError) as wrong:  # even the right code waits
        await service.rounds.enter_code(people[1], "DD2024")
    assert wrong.value.code == "code_rate_limited"
    async with seeded.connect() as conn:
        tries = await conn.scalar(select(func.count()).select_from(m.CodeTryRow))
        attempts2 = await conn.scalar(
            select(func.count()).select_from(m.AttemptRow).where(m.AttemptRow.round == 2)
        )
    assert (tries, attempts2) == (5, 0)  # the refused tries are not even counted

    clock.advance(minutes=10)
    await service.rounds.enter_code(people[1], "dd2024")
    assert (await service.rounds.entry(people[1])).state == "ready"
    async with service.uow(write=False) as uow:
        person = await uow.persons.by_account(people[1])
        assert person is not None
        seen = await uow.round2.seen_questions(person.id, 1)
        bank = len(await uow.questions.catalog())
    card = await service.exams.start_attempt(people[1], 2)
    assert card.round == 2 and card.total == rules.round2.round.questions
    async with service.uow(write=False) as uow:
        drawn = await uow.round2.seen_questions(person.id, 2)
    if bank - len(seen) >= rules.round2.round.questions:
        assert not drawn & seen  # the bank allows it: nothing seen in round 1
    else:
        assert len(drawn & seen) == rules.round2.round.questions - (bank - len(seen))
    # Finish it: 19 right in 100 s. Hai: 19 right in 100 s too (a tie on a prize boundary).
    async with service.uow(write=False) as uow:
        questions = {q.text: q for q in await uow.questions.catalog(include_inactive=True)}
    for position in range(card.total):
        question = questions[card.text]
        right = card.options.index(question.options[question.answer])
        if position == card.total - 1:
            clock.advance(seconds=100)
        outcome = await service.exams.answer(
            people[1], card.attempt_id, position, right if position < 19 else (right + 1) % 3
        )
        if outcome.next_card is not None:
            card = outcome.next_card
    with pytest.raises(ContestError) as refused:  # one attempt only
        await service.exams.start_attempt(people[1], 2)
    assert refused.value.code == "no_attempts_left"
    await service.rounds.enter_code(people[2], "DD2024")
    await take_round2(service, clock, people[2], 19, 100)
    # Ba does not sit round 2.
    hall = await service.rounds.hall()
    assert [(s.full_name, s.status) for s in hall] == [
        ("Người Một", "submitted"),
        ("Người Hai", "submitted"),
        ("Người Ba", None),
    ]

    # ---------------------------------------------------------------- prizes
    with pytest.raises(ContestError) as refused:
        await service.prizes.preview()
    assert refused.value.code == "round2_not_over"
    clock.set(rules.round2.round.window.closes + timedelta(minutes=1))
    allocation = await service.prizes.preview()
    label = {pid: lb.full_name for pid, lb in allocation.labels.items()}
    assert [(p, label[r.result.person_id]) for p, r in allocation.awarded] == [
        ("first", "Người Một"),  # submitted earlier
        ("second", "Người Hai"),
    ]
    assert [label[p] for p in allocation.absent] == ["Người Ba"]  # no prize
    assert len(allocation.ties) == 1 and allocation.ties[0].label == "first"
    with pytest.raises(ContestError) as refused:  # never settled silently
        await service.prizes.confirm(ORGANISER, allocation.digest, accept_ties=False)
    assert refused.value.code == "prize_tie_unsettled"
    assert await rows_of(seeded, m.PrizeRow) == []
    done_prizes = await service.prizes.confirm(ORGANISER, allocation.digest, accept_ties=True)
    assert {c.prize for c in done_prizes.confirmed} == {"first", "second"}
    with pytest.raises(ContestError) as refused:
        await service.prizes.confirm(ORGANISER, allocation.digest, accept_ties=True)
    assert refused.value.code == "prizes_already_confirmed"
    async with seeded.connect() as conn:
        told = await conn.scalar(
            select(func.count())
            .select_from(m.OutboxRow)
            .where(m.OutboxRow.kind == PRIZE_NOTIFICATION)
        )
    assert told == 2

    with pytest.raises(ContestError):  # no writer set (the assembly sets it)
        await service.prizes.workbook(ORGANISER)
    service.prizes.sheet_writer = sheet_xlsx
    data, count = await service.prizes.workbook(ORGANISER)
    assert count == 2
    sheet = openpyxl.load_workbook(BytesIO(data)).active
    assert sheet is not None
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0][0] == "Giải" and values[1][:3] == ["Giải Nhất", 1, "Người Một"]
    assert values[1][4] == "+84940000001" and values[1][7] == 3_000_000


def test_the_xlsx_never_writes_a_formula():
    data = sheet_xlsx("Giải thưởng", ["Họ và tên"], [["=1+1"], ["@SUM(A1)"]])
    book = openpyxl.load_workbook(BytesIO(data))
    sheet = book.active
    assert sheet is not None
    assert [c.value for c in sheet["A"]] == ["Họ và tên", "=1+1", "@SUM(A1)"]
    assert all(c.data_type == "s" for c in sheet["A"])


@pytest.mark.parametrize("seed", range(5))
def test_round2_questions_avoid_round1s_where_the_bank_allows(seed: int):
    bank = make_bank({f"topic-{n}": 12 for n in range(5)})  # 60 questions
    rng = random.Random(seed)
    seen = set(select_questions(bank, 20, rng)) | set(select_questions(bank, 20, rng))
    fresh = len(bank) - len(seen)
    ids = select_avoiding(bank, 20, rng, seen)
    assert len(set(ids)) == 20
    if fresh >= 20:
        assert not set(ids) & seen
    else:  # every fresh question, then as few seen ones as needed
        assert len(set(ids) & seen) == 20 - fresh
    small = make_bank({"a": 15, "b": 10})  # 25: only 5 are fresh after 20 seen
    seen_small = set(select_questions(small, 20, rng))
    ids = select_avoiding(small, 20, rng, seen_small)
    assert len(set(ids)) == 20 and len(set(ids) - seen_small) == 5


async def test_round2_asks_no_prediction_under_the_prediction_rule(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock, database_url: str
):
    """The prediction question belongs to round 1: round 2's last answer shows the result at
    once (its ties go by time), and a number typed afterwards is no prediction."""
    rules = replace(
        small_rules(rules),
        tie_break=(TieBreak.PREDICTION, TieBreak.TIME),
        prediction_question="Bao nhiêu người trả lời đúng cả 20 câu?",
    )
    service = ContestService(SqlUnitOfWorkFactory(seeded), clock, rules)
    person = await add_person(service, 1, "Người Một", ward_code="P-CATLINH")
    await take_exam(service, clock, person, 18)
    assert (await service.exams.awaiting_prediction(person)) is not None  # round 1 asks
    with pytest.raises(ContestError) as pending:  # a stale «Bắt đầu» starts nothing
        await service.exams.start_attempt(person)
    assert pending.value.code == "prediction_pending"
    assert (await service.exams.predict(person, "12")) is not None
    clock.set(rules.round1.window.closes + timedelta(hours=1))
    await service.predictions.set_official(ORGANISER, "10")
    proposal = await service.rounds.proposal()
    await service.rounds.confirm_qualifiers(ORGANISER, proposal.digest_cut, MODE_CUT)
    clock.set(rules.round2.round.window.opens + timedelta(minutes=1))
    await service.rounds.set_code(ORGANISER, "DD2024")
    await service.rounds.enter_code(person, "DD2024")

    async with service.uow(write=False) as uow:
        bank = {q.text: q for q in await uow.questions.catalog(include_inactive=True)}
    card = await service.exams.start_attempt(person, 2)
    for position in range(card.total):
        question = bank[card.text]
        outcome = await service.exams.answer(
            person, card.attempt_id, position, card.options.index(question.options[question.answer])
        )
        if outcome.next_card is not None:
            card = outcome.next_card
    assert outcome.ask is None and outcome.summary is not None
    assert outcome.summary.result.correct == rules.round2.round.questions
    assert await service.exams.awaiting_prediction(person) is None
    assert await service.exams.predict(person, "7") is None  # a number is no prediction here
    assert (await service.results.tie_rule(2)).uses_prediction is False

    # Locked after sitting round 2: out of the prizes, and listed as locked, not as absent.
    await lock_directly(database_url, person)
    clock.set(rules.round2.round.window.closes + timedelta(minutes=1))
    allocation = await service.prizes.preview()
    assert allocation.awarded == [] and allocation.absent == []
    assert len(allocation.locked) == 1
