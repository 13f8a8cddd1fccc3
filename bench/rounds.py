"""``python -m bench.rounds``: how long qualification and the prizes take, and how long
the confirmation holds SQLite's write lock.

Seeds a SQLite file with the sample units and bank and N contestants (100,000 by default),
each with 2 finished round-1 attempts, then, on the contest's own use cases:

- ``/vongloai``'s proposal (every counting attempt read and ranked by the tie rule);
- its confirmation: the qualifiers and their invitations in one short write transaction,
  then the final round-1 results (one outbox row per other contestant) in chunks. Every
  write transaction is timed from its ``BEGIN IMMEDIATE`` to its end: the longest is how
  long any other writer (a registration, the outbox sender) may have had to wait;
- ``/giaithuong``'s preview and confirmation, on the 50 qualifiers given a round-2 result.

Baselines, in the same run and on the same file, so the figures read as ratios: the bare
read of the counting attempts (what ranking cannot go below), and a bare
``INSERT … SELECT`` of as many rows as the final results queued, in one transaction (about
the least a one-transaction fan-out would hold the write lock).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any


class WriteTimer:
    """Times every write transaction of an engine (``BEGIN IMMEDIATE`` to commit or
    rollback): the spans the write lock was held."""

    def __init__(self) -> None:
        self.spans: list[float] = []
        self._open: dict[int, float] = {}

    def attach(self, engine: Any) -> None:
        from sqlalchemy import event

        sync = engine.sync_engine
        event.listen(sync, "begin", self._begin)  # after storage.db's BEGIN IMMEDIATE
        event.listen(sync, "commit", self._end)
        event.listen(sync, "rollback", self._end)

    def _begin(self, conn: Any) -> None:
        if conn.get_execution_options().get("contest_write", False):
            self._open[id(conn)] = time.perf_counter()

    def _end(self, conn: Any) -> None:
        began = self._open.pop(id(conn), None)
        if began is not None:
            self.spans.append(time.perf_counter() - began)

    def take(self) -> list[float]:
        spans, self.spans = self.spans, []
        return spans


async def measure(path: Path, count: int) -> dict[str, float]:
    from sqlalchemy import func, insert, select, text

    from bench.suite import seed_bank, seed_people, seed_results
    from bot.config import load_rules
    from contest.clock import ManualClock
    from contest.model import Account, Role
    from contest.services import ContestService
    from contest.usecases.prizes import PRIZE_NOTIFICATION
    from contest.usecases.rounds import FINAL_NOTIFICATION, INVITE_NOTIFICATION, MODE_CUT
    from contest.usecases.staff import Actor
    from storage import models as m
    from storage.db import create_engine
    from storage.schema import migrate
    from storage.uow import SqlUnitOfWorkFactory

    rules = load_rules(Path(__file__).resolve().parent.parent / "contest.example.toml")
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    organiser = Actor(Account.telegram(9001), Role.ORGANISER, name="Trưởng ban")
    figures: dict[str, float] = {}
    timer = WriteTimer()
    try:
        await migrate(engine)
        rng = random.Random(17)
        began = time.perf_counter()
        bank = await seed_bank(engine, rules)
        people = await seed_people(engine, bank, count, 8_000_000, rng)
        figures["attempts"] = float(await seed_results(engine, people, rng))
        figures["seed_s"] = time.perf_counter() - began
        figures["people"] = float(len(people))
        timer.attach(engine)

        clock = ManualClock(rules.round1.window.closes + timedelta(minutes=1))
        service = ContestService(SqlUnitOfWorkFactory(engine), clock, rules)

        # ------------------------------------------------------------ qualification
        began = time.perf_counter()
        proposal = await service.rounds.proposal()
        figures["proposal_s"] = time.perf_counter() - began
        figures["ranked"] = float(proposal.ranked)
        figures["eligible"] = float(proposal.eligible)
        timer.take()

        began = time.perf_counter()
        done = await service.rounds.confirm_qualifiers(organiser, proposal.digest_cut, MODE_CUT)
        figures["confirm_s"] = time.perf_counter() - began
        spans = timer.take()
        figures["confirm_writes"] = float(len(spans))
        figures["confirm_longest_write_s"] = max(spans)
        figures["confirm_first_write_s"] = spans[0]  # the qualifiers, invitations, marker
        chunks = sorted(spans[1:]) or [0.0]
        figures["confirm_chunk_median_s"] = chunks[len(chunks) // 2]
        figures["qualifiers"] = float(done.qualifiers)
        figures["others"] = float(done.others)

        # ------------------------------------------------------------ round 2 and prizes
        async with service.uow(write=False) as uow:
            confirmed = await uow.round2.qualifiers()
        r2 = rules.round2.round
        opens = r2.window.opens.astimezone(UTC)
        rows = []
        for n, q in enumerate(confirmed):
            seconds = round(rng.uniform(120, r2.duration.total_seconds() - 1), 3)
            started = opens + timedelta(minutes=5, seconds=n)
            rows.append(
                {
                    "person_id": q.person_id,
                    "round": 2,
                    "number": 1,
                    "question_count": r2.questions,
                    "status": "submitted",
                    "started_at": started,
                    "deadline_at": started + r2.duration,
                    "finished_at": started + timedelta(seconds=seconds),
                    "correct_count": rng.randint(r2.questions // 2, r2.questions),
                    "duration_seconds": seconds,
                    "warned": 0,
                    "counting": True,
                }
            )
        async with engine.begin() as conn:
            await conn.execute(insert(m.AttemptRow), rows)
        clock.set(r2.window.closes + timedelta(minutes=1))

        began = time.perf_counter()
        allocation = await service.prizes.preview()
        figures["prize_preview_s"] = time.perf_counter() - began
        timer.take()
        began = time.perf_counter()
        allocation = await service.prizes.confirm(
            organiser, allocation.digest, accept_ties=bool(allocation.ties)
        )
        figures["prize_confirm_s"] = time.perf_counter() - began
        figures["prize_longest_write_s"] = max(timer.take())
        figures["prizes"] = float(len(allocation.confirmed))
        figures["round2_results"] = float(len(rows))

        async with engine.connect() as conn:
            kinds = dict(
                (
                    await conn.execute(
                        select(m.OutboxRow.kind, func.count()).group_by(m.OutboxRow.kind)
                    )
                ).all()
            )
        figures["invites_queued"] = float(kinds.get(INVITE_NOTIFICATION, 0))
        figures["finals_queued"] = float(kinds.get(FINAL_NOTIFICATION, 0))
        figures["prize_notices_queued"] = float(kinds.get(PRIZE_NOTIFICATION, 0))

        # ------------------------------------------------------------ baselines
        began = time.perf_counter()
        async with engine.connect() as conn:
            counting = (
                await conn.exec_driver_sql(
                    "SELECT id, person_id, correct_count, question_count, duration_seconds, "
                    "finished_at, status FROM attempts WHERE round = 1 AND counting"
                )
            ).all()
        figures["read_s"] = time.perf_counter() - began
        figures["read_rows"] = float(len(counting))
        async with engine.begin() as conn:
            await conn.execute(
                text("CREATE TABLE scratch (id INTEGER PRIMARY KEY, key TEXT UNIQUE, p INT)")
            )
        began = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO scratch (key, p) SELECT 'round1_final:' || CAST(id AS TEXT), "
                    "id FROM persons LIMIT :n"
                ),
                {"n": int(figures["finals_queued"])},
            )
        figures["floor_s"] = time.perf_counter() - began
    finally:
        await engine.dispose()
    return figures


def report(f: dict[str, float]) -> str:
    read, floor = f["read_s"], f["floor_s"]
    people = int(f["people"])
    return "\n".join(
        [
            f"seeded {people:,} contestants, {int(f['attempts']):,} round-1 attempts, "
            f"in {f['seed_s']:.1f} s",
            f"/vongloai proposal: {int(f['ranked']):,} ranked ({int(f['eligible']):,} "
            f"eligible) in {f['proposal_s']:.2f} s ({f['proposal_s'] / read:.1f}× the bare "
            "read of the counting attempts)",
            f"confirm: {int(f['qualifiers'])} qualifiers, {int(f['finals_queued']):,} final "
            f"results queued in {f['confirm_s']:.2f} s, in {int(f['confirm_writes'])} write "
            f"transactions; the longest held the write lock {f['confirm_longest_write_s']:.3f} s "
            f"(the confirmation's own {f['confirm_first_write_s']:.3f} s, a chunk of final "
            f"results {f['confirm_chunk_median_s']:.3f} s at the median); "
            f"{f['confirm_longest_write_s'] / floor:.2f}× the bare INSERT … SELECT "
            "of all the final results in one transaction",
            f"prizes on {int(f['round2_results'])} round-2 results: preview in "
            f"{f['prize_preview_s'] * 1000:.1f} ms, confirm ({int(f['prizes'])} prizes) in "
            f"{f['prize_confirm_s'] * 1000:.1f} ms (longest write "
            f"{f['prize_longest_write_s'] * 1000:.1f} ms)",
            f"baseline: bare read of {int(f['read_rows']):,} counting attempts in "
            f"{read:.3f} s; bare INSERT … SELECT of {int(f['finals_queued']):,} rows in one "
            f"transaction in {floor:.3f} s",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rounds", description=__doc__)
    parser.add_argument("--people", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rounds-bench-") as folder:
        figures = asyncio.run(measure(Path(folder) / "contest.db", args.people))
    print(report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
