"""The plan's quota per unit: at least one leader and 30% of the staff taking part; the
figures from the database (one aggregate query) on both engines."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from contest.model import Account, Group, Position, Unit, UnitKind
from contest.participation import UnitCounts, evaluate, needed_participants, worst_first
from contest.rules import ContestRules, QuotaRules
from contest.services import ContestService
from storage import models as m
from storage.uow import SqlUnitOfWorkFactory

QUOTA = QuotaRules()
_NOW = datetime(2024, 8, 5, 2, 0, tzinfo=UTC)


def unit(uid: int, staff: int, name: str = "") -> Unit:
    return Unit(uid, f"U{uid}", name or f"Đơn vị {uid}", UnitKind.DEPARTMENT, staff)


def test_needed_participants_rounds_up_and_is_exact_at_whole_numbers():
    assert needed_participants(10, QUOTA) == 3  # 0.3 * 10 is not 3.0000000000000004
    assert needed_participants(24, QUOTA) == 8  # 7.2 people: 8
    assert needed_participants(20, QUOTA) == 6
    assert needed_participants(1, QUOTA) == 1
    assert needed_participants(0, QUOTA) == 0


def test_exactly_at_the_quota_just_under_and_without_a_leader():
    at = evaluate(UnitCounts(unit(1, 20), 9, 6, 1, 4.5), QUOTA)  # 6/20 = 30%
    under = evaluate(UnitCounts(unit(2, 20), 9, 5, 2, 3.0), QUOTA)  # 25%
    leaderless = evaluate(UnitCounts(unit(3, 10), 8, 8, 0, 6.4), QUOTA)  # 80%, no leader
    nobody = evaluate(UnitCounts(unit(4, 15), 0, 0, 0, 0.0), QUOTA)
    assert (at.rate, at.rate_ok, at.leader_ok, at.meets_quota) == (0.3, True, True, True)
    assert (under.rate_ok, under.leader_ok, under.meets_quota, under.missing) == (
        False,
        True,
        False,
        1,
    )
    assert (leaderless.rate_ok, leaderless.leader_ok, leaderless.meets_quota) == (
        True,
        False,
        False,
    )
    assert at.average_best == 0.75 and nobody.average_best is None
    ordered = worst_first([at, under, leaderless, nobody])
    assert [r.unit.id for r in ordered] == [4, 2, 3, 1]


async def _person(
    uows: SqlUnitOfWorkFactory, n: int, unit_id: int | None, leader: bool, citizen_ward: int = 0
) -> Account:
    account = Account.telegram(70_000 + n)
    async with uows() as uow:
        await uow.persons.add(
            account=account,
            full_name=f"Người {n}",
            birth_date=date(1990, 1, 1),
            phone=f"09300{n:05d}",
            group=Group.CITIZEN if citizen_ward else Group.CIVIL_SERVANT,
            unit_id=None if citizen_ward else unit_id,
            position=None if citizen_ward else (Position.LEADER if leader else Position.STAFF),
            ward_id=citizen_ward or None,
            consent_at=_NOW,
            registered_at=_NOW,
        )
        await uow.commit()
    return account


async def test_unit_counts_from_the_database(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock
):
    """Cát Linh (24 staff): 8 take part with a leader (8 >= 7.2: met); Văn Miếu (20): 5
    take part with a leader (25%: not met); Kim Liên (28): 9 take part, none a leader. A
    registered person without a finished attempt, a citizen of the ward and a locked
    participant do not count."""
    uows = SqlUnitOfWorkFactory(seeded)
    service = ContestService(uows, clock, rules, rng=random.Random(5))
    async with uows(write=False) as uow:
        cat_linh = await uow.units.by_code("P-CATLINH")
        van_mieu = await uow.units.by_code("P-VANMIEU")
        kim_lien = await uow.units.by_code("P-KIMLIEN")
    assert cat_linh and van_mieu and kim_lien
    plan = [(cat_linh, 8, 1), (van_mieu, 5, 2), (kim_lien, 9, 0)]
    n = 0
    for ward, takers, leaders in plan:
        for k in range(takers):
            n += 1
            account = await _person(uows, n, ward.id, leader=k < leaders)
            card = await service.exams.start_attempt(account)
            for position in range(card.total):  # all A: some right, some wrong
                await service.exams.answer(account, card.attempt_id, position, 0)
    n += 1
    await _person(uows, n, cat_linh.id, leader=True)  # registered, no attempt
    n += 1
    citizen = await _person(uows, n, None, leader=False, citizen_ward=cat_linh.id)
    card = await service.exams.start_attempt(citizen)
    for position in range(card.total):
        await service.exams.answer(citizen, card.attempt_id, position, 1)
    async with uows() as uow:  # a locked participant of Văn Miếu is left out
        person = await uow.persons.by_account(Account.telegram(70_000 + 9))
        assert person is not None
        assert uow.session is not None
        await uow.session.execute(
            update(m.PersonRow).where(m.PersonRow.id == person.id).values(locked_at=_NOW)
        )
        await uow.commit()

    rows = {r.unit.code: r for r in await service.stats.participation()}
    assert (rows["P-CATLINH"].registered, rows["P-CATLINH"].participants) == (9, 8)
    assert rows["P-CATLINH"].meets_quota and rows["P-CATLINH"].leaders == 1
    assert (rows["P-VANMIEU"].participants, rows["P-VANMIEU"].leaders) == (4, 1)
    assert not rows["P-VANMIEU"].rate_ok and rows["P-VANMIEU"].leader_ok
    assert rows["P-KIMLIEN"].rate_ok and not rows["P-KIMLIEN"].leader_ok
    average = rows["P-CATLINH"].average_best
    assert average is not None and 0 <= average <= 1
    only = await service.stats.participation(unit_id=van_mieu.id)
    assert [r.unit.code for r in only] == ["P-VANMIEU"]

    totals = await service.stats.totals()
    assert (totals.registered, totals.civil_servants, totals.citizens) == (23, 22, 1)
    assert (totals.took_part, totals.attempts, totals.in_progress) == (22, 23, 0)
    assert totals.by_kind[UnitKind.WARD] == (22, 21)
