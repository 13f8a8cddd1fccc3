"""``python -m bench.campaign``: how long a campaign reminder takes to fan out.

Seeds a SQLite file with the sample units and bank and N contestants (100,000 by default;
a third citizens), half of them with 2 finished round-1 attempts, then runs the campaign's
use case as the scheduler does at two moments of the plan: the launch on 15/7 (one outbox
row per registered person) and the daily reminder of 1/8 at 19:00 (one row per person
without an attempt). Each fan-out is one ``INSERT … SELECT`` in one transaction, decided
once by a compare-and-set on the event's state row.

Baseline, in the same run and on the same file: the same number of rows written by a bare
``INSERT … SELECT`` of the persons' ids into a scratch table (the floor for writing that
many rows on this machine), so the figure is a ratio, not a number of a noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from contest.rules import LOCAL_TZ


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=LOCAL_TZ)  # type: ignore[arg-type,misc]


async def measure(path: Path, count: int) -> dict[str, float]:
    from sqlalchemy import func, select, text, update

    from bench.suite import seed_bank, seed_people, seed_results
    from bot.config import load_rules
    from contest.clock import ManualClock
    from contest.services import ContestService
    from storage import models as m
    from storage.db import create_engine
    from storage.schema import migrate
    from storage.uow import SqlUnitOfWorkFactory

    rules = load_rules(Path(__file__).resolve().parent.parent / "contest.example.toml")
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    figures: dict[str, float] = {}
    try:
        await migrate(engine)
        rng = random.Random(11)
        began = time.perf_counter()
        bank = await seed_bank(engine, rules)
        people = await seed_people(engine, bank, count, 8_000_000, rng)
        await seed_results(engine, people[: len(people) // 2], rng)
        async with engine.begin() as conn:  # registered before the campaign, as in 2024
            await conn.execute(update(m.PersonRow).values(registered_at=local(2024, 7, 1)))
        figures["seed_s"] = time.perf_counter() - began
        figures["people"] = float(len(people))

        clock = ManualClock(local(2024, 7, 15, 7, 0, 5))
        service = ContestService(SqlUnitOfWorkFactory(engine), clock, rules)
        for name, moment in (
            ("launch", local(2024, 7, 15, 7, 0, 5)),
            ("opening", local(2024, 8, 1, 7, 0, 5)),
            ("daily", local(2024, 8, 1, 19, 0, 5)),
        ):
            clock.set(moment)
            began = time.perf_counter()
            done = await service.campaign.run_due()
            figures[f"{name}_s"] = time.perf_counter() - began
            figures[f"{name}_rows"] = float(sum(d.recipients or 0 for d in done))

        async with engine.connect() as conn:
            queued = await conn.scalar(select(func.count()).select_from(m.OutboxRow))
        figures["queued"] = float(queued or 0)

        # The floor: the same number of rows, as bare as SQLite writes them.
        async with engine.begin() as conn:
            await conn.execute(
                text("CREATE TABLE scratch (id INTEGER PRIMARY KEY, key TEXT UNIQUE, p INT)")
            )
        began = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO scratch (key, p) SELECT 'reminder:x:' || CAST(id AS TEXT), id "
                    "FROM persons"
                )
            )
        figures["floor_s"] = time.perf_counter() - began
    finally:
        await engine.dispose()
    return figures


def report(f: dict[str, float]) -> str:
    floor_per_row = f["floor_s"] / max(f["people"], 1)
    lines = [f"seeded {int(f['people']):,} contestants (half with attempts) in {f['seed_s']:.1f} s"]
    for name, label in (
        ("launch", "launch (15/7, everyone)"),
        ("opening", "round 1 opening (1/8, everyone)"),
        ("daily", "daily reminder (1/8 19:00, those without an attempt)"),
    ):
        rows = f[f"{name}_rows"]
        seconds = f[f"{name}_s"]
        ratio = (seconds / rows) / floor_per_row if rows else float("nan")
        lines.append(
            f"{label}: {int(rows):,} outbox rows in {seconds:.2f} s "
            f"({rows / seconds:,.0f} rows/s; {ratio:.1f}× the bare INSERT … SELECT per row)"
        )
    lines.append(
        f"baseline: bare INSERT … SELECT of {int(f['people']):,} rows in {f['floor_s']:.2f} s"
    )
    lines.append(f"outbox rows queued in all: {int(f['queued']):,}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.campaign", description=__doc__)
    parser.add_argument("--people", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="campaign-bench-") as folder:
        figures = asyncio.run(measure(Path(folder) / "contest.db", args.people))
    print(report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
