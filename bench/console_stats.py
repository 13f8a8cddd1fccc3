"""``python -m bench.console_stats``: how long the organisers' live picture takes.

Seeds a SQLite file with the sample units and bank and N contestants (100,000 by default;
a third citizens) with 2 finished round-1 attempts each (the counting ones flagged as a
finish flags them), then times whole console requests through the router, as a chat sends
them: ``/thongke`` of an organiser (the totals and the first page of the per-unit table),
a focal person's ``/thongke`` (their unit with its colleagues' lists: the seed puts about
1/45 of the civil servants in each unit, some 1,500 people), and ``/bxh`` (the first page
of the leaderboard, and its last page). Each request also writes its audit entry, as in
the bot. Figures: the first (cold) run and the median of the next runs.

Targets (issue 9): ``/thongke`` under 1 s, ``/bxh`` first page under 1 s. The CPU figure
(this process, SQLite's threads included) tells what a busy machine did to the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

TARGET_S = 1.0


async def seed(engine: object, count: int, rng: random.Random) -> dict[str, int]:
    """The sample units and bank, ``count`` people (a third citizens) with 2 finished
    round-1 attempts each, the counting ones flagged (bench.suite's seeders)."""
    from sqlalchemy.ext.asyncio import AsyncEngine

    from bench.suite import seed_bank, seed_people, seed_results
    from bot.config import load_rules

    assert isinstance(engine, AsyncEngine)
    rules = load_rules(Path(__file__).resolve().parent.parent / "contest.example.toml")
    bank = await seed_bank(engine, rules)
    people = await seed_people(engine, bank, count, 7_000_000, rng)
    attempts = await seed_results(engine, people, rng)
    return {"people": len(people), "attempts": attempts}


async def _timed(run: Callable[[], Awaitable[object]], repeat: int) -> dict[str, float]:
    samples, cpu = [], []
    for _ in range(repeat + 1):
        began, began_cpu = time.perf_counter(), time.process_time()
        await run()
        samples.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    return {
        "first_s": samples[0],
        "median_s": statistics.median(samples[1:]),
        "cpu_s": statistics.median(cpu[1:]),  # this process's threads (SQLite's too)
    }


async def measure(url: str, unit_id: int, repeat: int = 5) -> dict[str, float]:
    """Time the console requests on a seeded database; seconds per request."""
    import contest.ui.console  # noqa: F401  (registers the routes)
    from bot.config import load_rules
    from contest.clock import SystemClock
    from contest.model import Account, Role
    from contest.services import ContestService
    from contest.ui.console.stats import leaderboard_text, overview_text
    from contest.ui.router import Ui
    from contest.usecases.staff import Actor
    from storage.db import create_engine
    from storage.uow import SqlUnitOfWorkFactory

    rules = load_rules(Path(__file__).resolve().parent.parent / "contest.example.toml")
    engine = create_engine(url)
    try:
        service = ContestService(SqlUnitOfWorkFactory(engine), SystemClock(), rules)
        ui = Ui(service)
        organiser = Actor(Account.telegram(1), Role.ORGANISER, None, "Ban Tổ chức")
        focal = Actor(Account.telegram(2), Role.FOCAL, unit_id, "Đầu mối")
        figures: dict[str, float] = {}
        replies: dict[str, str] = {}

        async def thongke() -> None:
            replies["thongke"] = (await ui.command(organiser, "thongke")).text

        async def thongke_focal() -> None:
            replies["thongke_focal"] = (await ui.command(focal, "thongke")).text

        async def bxh() -> None:
            replies["bxh"] = (await ui.command(organiser, "bxh")).text

        async def overview_only() -> None:
            view = await service.stats.overview()
            overview_text(view, rules.quota, rules.round1.questions, 1)

        async def bxh_only() -> None:
            leaderboard_text(await service.results.leaderboard(1, 0))

        board = await service.results.leaderboard(1, 0)

        async def bxh_last() -> None:
            await ui.action(organiser, f"a:bxh:1:{board.pages - 1}")

        for name, run in (
            ("thongke", thongke),
            ("thongke_use_case", overview_only),
            ("thongke_focal", thongke_focal),
            ("bxh", bxh),
            ("bxh_use_case", bxh_only),
            ("bxh_last_page", bxh_last),
        ):
            for key, value in (await _timed(run, repeat)).items():
                figures[f"{name}_{key}"] = value
        for name, text in replies.items():
            figures[f"{name}_chars"] = float(len(text))
        figures["ranked"] = float(board.total)
        return figures
    finally:
        await engine.dispose()


def report(figures: dict[str, float]) -> str:
    lines = []
    if "seed_s" in figures:
        lines.append(
            f"seeded {int(figures['seeded_people']):,} contestants + "
            f"{int(figures['seeded_attempts']):,} attempts in {figures['seed_s']:.1f} s"
        )
    rows = [
        ("/thongke (organiser: totals + first page, via the router)", "thongke"),
        ("  of which the use cases + rendering", "thongke_use_case"),
        ("/thongke (focal person: own unit + colleague lists)", "thongke_focal"),
        ("/bxh first page (via the router)", "bxh"),
        ("  of which the use case + rendering", "bxh_use_case"),
        ("/bxh last page", "bxh_last_page"),
    ]
    for label, key in rows:
        median = figures[f"{key}_median_s"]
        first, cpu = figures[f"{key}_first_s"], figures[f"{key}_cpu_s"]
        verdict = "met" if median < TARGET_S else "MISSED"
        lines.append(
            f"{label}: {median * 1000:.0f} ms median, CPU {cpu * 1000:.0f} ms (first run "
            f"{first * 1000:.0f} ms); target < {TARGET_S:.0f} s: {verdict}"
        )
    lines.append(f"ranked contestants: {int(figures['ranked']):,}")
    return "\n".join(lines)


async def _largest_unit(engine: object) -> int:
    from sqlalchemy import func, select
    from sqlalchemy.ext.asyncio import AsyncEngine

    from storage import models as m

    assert isinstance(engine, AsyncEngine)
    async with engine.connect() as conn:
        unit_id = await conn.scalar(
            select(m.PersonRow.unit_id)
            .where(m.PersonRow.unit_id.is_not(None))
            .group_by(m.PersonRow.unit_id)
            .order_by(func.count().desc())
            .limit(1)
        )
    return int(unit_id or 0)


async def measure_fresh(path: Path, count: int, repeat: int = 5) -> dict[str, float]:
    """Seed ``path`` (a SQLite file) unless it has contestants already, then measure."""
    from sqlalchemy import func, select

    from storage import models as m
    from storage.db import create_engine
    from storage.schema import migrate

    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    figures: dict[str, float] = {}
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            people = int(await conn.scalar(select(func.count()).select_from(m.PersonRow)) or 0)
        if people == 0:
            began = time.perf_counter()
            seeded = await seed(engine, count, random.Random(9))
            figures["seed_s"] = time.perf_counter() - began
            figures["seeded_people"] = float(seeded["people"])
            figures["seeded_attempts"] = float(seeded["attempts"])
        unit_id = await _largest_unit(engine)
    finally:
        await engine.dispose()
    figures.update(await measure(url, unit_id, repeat))
    return figures


async def run(count: int, db: Path | None, repeat: int) -> int:
    with tempfile.TemporaryDirectory(prefix="console-stats-") as folder:
        path = db or Path(folder) / "contest.db"
        print(report(await measure_fresh(path, count, repeat)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console_stats", description=__doc__)
    parser.add_argument("--contestants", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs after the first")
    parser.add_argument(
        "--db", type=Path, help="a SQLite file to seed once and reuse (kept after the run)"
    )
    args = parser.parse_args(argv)
    return asyncio.run(run(args.contestants, args.db, args.repeat))


if __name__ == "__main__":
    sys.exit(main())
