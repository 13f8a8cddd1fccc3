"""Confirming the qualifiers keeps the write lock briefly: the ranking is read before the
write transaction, whose fingerprint check refuses a confirmation when a lock (or a
regrade) came in between; the final round-1 results are queued in chunks after it, and a
fan-out a crash interrupted is completed by the scheduler's tick, each result queued
exactly once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contest.clock import ManualClock
from contest.errors import ContestError
from contest.model import Account
from contest.rules import ContestRules
from contest.services import ContestService
from contest.usecases.rounds import (
    FINAL_NOTIFICATION,
    FINALS_KEY,
    INVITE_NOTIFICATION,
    MODE_CUT,
)
from scheduler.campaign import CampaignScheduler
from scheduler.lease import LeaseGuard
from storage import models as m
from storage.uow import SqlUnitOfWorkFactory
from tests.test_console_stats import add_person, take_exam
from tests.test_round2 import ORGANISER, small_rules

SCORES = [20, 19, 18, 17, 16, 15, 14, 13, 12]  # nine take part; three go on


async def take_part(service: ContestService, clock: ManualClock) -> list[Account]:
    people = []
    for n, correct in enumerate(SCORES, start=1):
        account = await add_person(service, n, f"Người Số {n}", ward_code="P-CATLINH")
        await take_exam(service, clock, account, correct)
        people.append(account)
    clock.set(service.rules.round1.window.closes + timedelta(minutes=1))
    return people


async def person_id(service: ContestService, account: Account) -> int:
    async with service.uow(write=False) as uow:
        person = await uow.persons.by_account(account)
    assert person is not None
    return person.id


async def outbox(engine: AsyncEngine) -> list[tuple[str, str, int]]:
    """The qualification's notifications in the outbox (not the attempts' results)."""
    o = m.OutboxRow
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(o.kind, o.key, o.person_id).where(
                o.kind.in_([INVITE_NOTIFICATION, FINAL_NOTIFICATION])
            )
        )
        return [(r[0], r[1], r[2]) for r in rows]


async def finals_state(engine: AsyncEngine) -> dict[str, object]:
    async with engine.connect() as conn:
        value = await conn.scalar(
            select(m.ContestStateRow.value).where(m.ContestStateRow.key == FINALS_KEY)
        )
    assert value is not None
    loaded = json.loads(value)
    assert isinstance(loaded, dict)
    return loaded


async def test_a_crash_mid_fan_out_ends_with_every_final_result_queued_once(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock
):
    rules = small_rules(rules)
    service = ContestService(SqlUnitOfWorkFactory(seeded), clock, rules)
    people = await take_part(service, clock)
    proposal = await service.rounds.proposal()

    # The confirmation alone (the process dies right after its write transaction).
    qualifiers, ranking, chosen, _ = await service.rounds.confirm_only(
        ORGANISER, proposal.digest_cut, MODE_CUT
    )
    assert (qualifiers, len(ranking), len(chosen)) == (3, 9, 3)
    assert sorted(k for k, _, _ in await outbox(seeded)) == [INVITE_NOTIFICATION] * 3
    assert await finals_state(seeded) == {"done": False, "others": 6}
    assert await service.rounds.finals_pending()

    # A restart: the fan-out resumes, two per transaction, and dies after the first chunk.
    service = ContestService(SqlUnitOfWorkFactory(seeded), clock, rules)
    service.rounds.finals_chunk = 2
    assert await service.rounds.finish_finals(max_chunks=1) == 2
    assert Counter(k for k, _, _ in await outbox(seeded))[FINAL_NOTIFICATION] == 2
    assert await service.rounds.finals_pending()

    # Another restart: the scheduler's tick completes it.
    service = ContestService(SqlUnitOfWorkFactory(seeded), clock, rules)
    service.rounds.finals_chunk = 2
    lease = LeaseGuard(seeded, "scheduler", "test-process", 60.0)
    assert (await lease.renew())[0]
    woken = []
    ticker = CampaignScheduler(service, None, lease, wake_sender=lambda: woken.append(1))  # type: ignore[arg-type]
    await ticker.tick()
    assert woken and not await service.rounds.finals_pending()
    assert await finals_state(seeded) == {"done": True, "others": 6}
    assert await service.rounds.finish_finals() == 0  # nothing pending: nothing done

    rows = await outbox(seeded)
    finals = [person for kind, _, person in rows if kind == FINAL_NOTIFICATION]
    invited = {person for kind, _, person in rows if kind == INVITE_NOTIFICATION}
    everyone = {await person_id(service, a) for a in people}
    assert len(finals) == len(set(finals)) == 6  # exactly once each
    assert set(finals) == everyone - invited and invited == chosen
    assert len(rows) == 9


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_lock_between_the_read_and_the_write_makes_the_confirmation_stale(
    seeded: AsyncEngine, rules: ContestRules, clock: ManualClock
):
    rules = small_rules(rules)
    service = ContestService(SqlUnitOfWorkFactory(seeded), clock, rules)
    people = await take_part(service, clock)
    proposal = await service.rounds.proposal()
    last = await person_id(service, people[-1])  # not among the qualifiers

    # Another writer holds SQLite's write lock: the confirmation reads and ranks meanwhile,
    # then waits for the lock; the writer locks a person (the ranking changes) and commits.
    async with service.uow() as uow:
        confirming = asyncio.create_task(
            service.rounds.confirm_qualifiers(ORGANISER, proposal.digest_cut, MODE_CUT)
        )
        await asyncio.sleep(0.3)
        assert not confirming.done()
        assert await uow.locks.lock(last, datetime.now(UTC), "Trùng tài khoản")
        await uow.commit()
    with pytest.raises(ContestError) as stale:
        await confirming
    assert stale.value.code == "qualifiers_stale"
    assert await outbox(seeded) == []

    # The same list confirmed again (the cut did not move): the locked person is not told.
    done = await service.rounds.confirm_qualifiers(ORGANISER, proposal.digest_cut, MODE_CUT)
    assert (done.qualifiers, done.others) == (3, 5)
    told = {person for kind, _, person in await outbox(seeded) if kind == FINAL_NOTIFICATION}
    assert len(told) == 5 and last not in told
    assert await finals_state(seeded) == {"done": True, "others": 5}


async def test_the_rounds_bench_counts(tmp_path):
    """``python -m bench.rounds`` on a small seed: everyone ranked, 50 qualifiers invited,
    every other contestant's final result queued once, in chunks after one short write,
    and the prizes allocated on the round-2 results (no timing asserted)."""
    from bench import rounds

    figures = await rounds.measure(tmp_path / "bench.db", 400)
    assert (figures["people"], figures["attempts"], figures["ranked"]) == (400, 800, 400)
    assert figures["read_rows"] == 400
    assert figures["qualifiers"] == figures["invites_queued"] == 50
    assert figures["others"] == figures["finals_queued"] == 350
    assert figures["confirm_writes"] == 2  # the confirmation, then one chunk of 350
    assert (figures["round2_results"], figures["prizes"]) == (50, 10)
    assert figures["prize_notices_queued"] == 10
    assert "the longest held the write lock" in rounds.report(figures)
