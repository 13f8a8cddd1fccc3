"""Answers per second on the Zalo channel: the Zalo-only process (long polling, one update
per getUpdates call) against the fake Zalo Bot API, contestants answering as fast as the
questions come, on a SQLite file.

Unlike the Telegram figures of ``bench.suite`` (bot and fake in two processes), the fake,
the contestants and the bot share ONE process and event loop here: the figure is a floor.

``python -m bench.zalo_answers [--people 40]`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from pydantic import SecretStr

from bot.config import load_rules
from bot.settings import Settings
from bot.zalo import ZaloProcess
from contest.clock import ManualClock
from contest.importing import validate_questions, validate_units
from contest.model import Account, Group
from contest.registration import Step
from contest.rules import LOCAL_TZ
from contest.services import ContestService
from fakes.zalo import FakeZaloApi, FakeZaloUser, ZaloMessage
from storage.db import create_engine
from storage.files import read_table
from storage.schema import migrate
from storage.uow import SqlUnitOfWorkFactory

ROOT = Path(__file__).resolve().parent.parent


async def _seed(url: str, clock: ManualClock, people: int) -> None:
    rules = load_rules(ROOT / "contest.example.toml")
    engine = create_engine(url)
    try:
        await migrate(engine)
        service = ContestService(SqlUnitOfWorkFactory(engine), clock, rules)
        header, rows = read_table(ROOT / "storage" / "samples" / "questions.csv")
        await service.console.import_questions(validate_questions(header, rows))
        header, rows = read_table(ROOT / "storage" / "samples" / "units.csv")
        await service.console.import_units(validate_units(header, rows))
        reg = service.registration
        for n in range(people):
            account = Account.zalo(f"b{n}")
            await reg.begin_registration(account)
            await reg.register_input(account, Step.CONSENT, True)
            await reg.register_input(account, Step.NAME, f"Người Thử {n}")
            await reg.register_input(account, Step.BIRTH_DATE, "01/01/1990")
            await reg.register_input(account, Step.PHONE, (f"09{n:08d}", None))
            view = await reg.register_input(account, Step.GROUP, Group.CITIZEN)
            assert view.page is not None
            await reg.register_input(account, Step.WARD, view.page.units[0].id)
            await reg.confirm_registration(account)
    finally:
        await engine.dispose()


def _next(following: str) -> Callable[[ZaloMessage], bool]:
    return lambda m: following in m.text or "bài thi" in m.text


async def _contestant(user: FakeZaloUser) -> int:
    await user.send_text("thi")
    await user.wait_for(lambda m: "gõ 1 để bắt đầu" in m.text, 30)
    await user.send_text("1")
    await user.wait_for(lambda m: "Câu 1/20" in m.text, 30)
    for position in range(1, 21):
        following = f"Câu {position + 1}/20"
        await user.send_text("b")
        await user.wait_for(_next(following), 30)
    return 20


async def run(people: int) -> dict[str, float]:
    clock = ManualClock(datetime(2024, 8, 5, 9, 0, tzinfo=LOCAL_TZ))
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        await _seed(url, clock, people)
        async with FakeZaloApi() as api:
            settings = Settings(  # type: ignore[call-arg]
                zalo_token=SecretStr(api.token),
                zalo_api_url=api.base_url,
                database_url=url,
                poll_timeout=1,
                zalo_send_rate=1000.0,
                zalo_chat_send_interval=0.0,
                _env_file=None,
            )
            process = ZaloProcess(settings, load_rules(ROOT / "contest.example.toml"), clock=clock)
            await process.start()
            try:
                users = [api.user(f"b{n}", f"Người Thử {n}") for n in range(people)]
                started = time.perf_counter()
                cpu = time.process_time()
                answers = sum(await asyncio.gather(*(_contestant(u) for u in users)))
                wall = time.perf_counter() - started
                cpu = time.process_time() - cpu
            finally:
                await process.stop()
    return {
        "people": people,
        "answers": answers,
        "seconds": round(wall, 2),
        "answers_per_s": round(answers / wall, 1),
        "cpu_ms_per_answer_all_in_one_process": round(cpu * 1000 / answers, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Zalo answers per second")
    parser.add_argument("--people", type=int, default=40)
    args = parser.parse_args(argv)
    print(json.dumps({"zalo_answers": asyncio.run(run(args.people))}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
