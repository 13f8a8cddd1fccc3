"""``python -m bench.console_broadcast``: how fast a broadcast goes out.

Seeds a SQLite file with the sample units and bank and 100,000 contestants, 90,000 of them
with 2 finished round-1 attempts (so the segment "registered, no attempt yet" holds the
other 10,000), starts the fake Bot API server in a process of its own (``bench.suite``'s
``--serve-fake``: its CPU is not the bot's), and drives the real application
(``bot.app.build_application``, set up as at start-up) in this process:

* fan-out: the time to confirm a broadcast to the 10,000 (the compare-and-set, one outbox
  row per recipient, the audit entry, one transaction), and its preview before;
* pacing on (the default 30 messages/s overall, 1 s per chat): ``DeadlineScheduler.deliver``
  for a short window, the rate measured and the whole broadcast extrapolated;
* pacing lifted (``bench.suite.send_limit_overrides``): a second broadcast to the same
  10,000, delivered in full: messages/s and CPU seconds per 1,000.

Targets (issue 9): paced at Telegram's allowance; at least 1,000 messages/s with pacing
lifted. ``contest-bot bench --only notify`` measures deadline results (2 Bot API calls and
per-attempt reads each) on the same path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PTB_TIMEDELTA", "1")

TARGET_LIFTED_PER_S = 1_000.0
ORGANISER = 42
FIRST_UID = 9_000_000
TEXT = (
    "Vòng 1 cuộc thi «Tìm hiểu công tác cải cách hành chính» kết thúc lúc 17:00 ngày 15/8. "
    "Bạn chưa thi lần nào: gõ /thi để bắt đầu. Chúc bạn thành công!"
)


async def seed(url: str, rules: Any, people: int, recipients: int) -> list[int]:
    """The bank and units, ``people`` contestants, all but ``recipients`` of them with 2
    finished attempts; the Telegram ids of those without one."""
    from bench.suite import bench_engine, seed_bank, seed_people, seed_results
    from storage.schema import migrate

    engine = bench_engine(url, None)
    try:
        await migrate(engine)
        rng = random.Random(9)
        bank = await seed_bank(engine, rules)
        everyone = await seed_people(engine, bank, people, FIRST_UID, rng)
        await seed_results(engine, everyone[recipients:], rng)
    finally:
        await engine.dispose()
    return [uid for _, uid in everyone[:recipients]]


async def _fake_calls(fake: Any) -> int:
    stats = await fake.call({"cmd": "stats"})
    return int(stats["calls"].get("sendMessage", 0))


async def _application(url: str, base_url: str, token: str, rules_path: Path, **limits: Any) -> Any:
    """The real bot, set up as at start-up (migrations, the bulk-send bot, the lease), its
    job queue not running: deliveries are started here."""
    from bench.suite import bench_engine
    from bot.app import build_application
    from bot.config import load_rules
    from bot.settings import Settings

    # Validated from these values only (no environment, no .env file).
    settings = Settings.model_validate(
        {
            "bot_token": token,
            "bot_api_url": base_url,
            "database_url": url,
            "admin_ids": str(ORGANISER),
            "config": rules_path,
            **limits,
        }
    )
    app = build_application(
        settings, load_rules(rules_path), engine=bench_engine(url, None), polling=False
    )
    await app.initialize()
    if app.post_init is not None:
        await app.post_init(app)
    return app


async def _close(app: Any) -> None:
    await app.shutdown()
    if app.post_shutdown is not None:
        await app.post_shutdown(app)


async def measure(
    url: str, base_url: str, token: str, rules_path: Path, fake: Any, window: float
) -> dict[str, float]:
    """Fan-out, the paced window and the lifted run; figures in seconds and messages/s."""
    from sqlalchemy import text

    from bench.suite import machine_busy, proc_cpu, send_limit_overrides
    from bot.app import runtime, tune_gc
    from contest.model import Account, Role
    from contest.ports import Segment, SegmentKind
    from contest.usecases.staff import Actor

    tune_gc()
    organiser = Actor(Account.telegram(ORGANISER), Role.ORGANISER, None, "Ban Tổ chức")
    segment = Segment(SegmentKind.NO_ATTEMPT)
    figures: dict[str, float] = {}

    # -- fan-out and the paced window (the default allowance)
    app = await _application(url, base_url, token, rules_path)
    try:
        rt = runtime(app)
        service = rt.service
        began = time.perf_counter()
        preview = await service.broadcasts.draft(organiser, segment, TEXT)
        figures["preview_s"] = time.perf_counter() - began
        figures["recipients"] = preview.audience.recipients
        began = time.perf_counter()
        first = await service.broadcasts.confirm(organiser, preview.broadcast.id)
        figures["fanout_s"] = time.perf_counter() - began
        figures["fanout_rows"] = first.total

        before = await _fake_calls(fake)
        delivery = asyncio.create_task(rt.deadlines.deliver())
        await asyncio.sleep(1.0)  # the first claim and the first sends: not in the window
        start_calls = await _fake_calls(fake)
        began = time.perf_counter()
        await asyncio.sleep(window)
        paced = await _fake_calls(fake) - start_calls
        figures["paced_window_s"] = time.perf_counter() - began
        figures["paced_per_s"] = paced / figures["paced_window_s"]
        await rt.deadlines.stop()
        await asyncio.gather(delivery, return_exceptions=True)
        figures["paced_sent"] = await _fake_calls(fake) - before
        async with rt.engine.begin() as conn:  # the rest of the first one: not sent here
            await conn.execute(
                text(
                    "UPDATE outbox SET sent_at = created_at, outcome = 'skipped' "
                    "WHERE sent_at IS NULL AND key LIKE 'broadcast:%'"
                )
            )
        second = await service.broadcasts.draft(organiser, segment, TEXT)
        await service.broadcasts.confirm(organiser, second.broadcast.id)
    finally:
        await _close(app)

    # -- pacing lifted: the second broadcast, in full
    overrides, note = send_limit_overrides()
    app = await _application(url, base_url, token, rules_path, **overrides)
    try:
        rt = runtime(app)
        before = await _fake_calls(fake)
        fake_cpu0 = proc_cpu(fake.pid)
        busy0 = machine_busy()
        began = time.perf_counter()
        cpu0 = time.process_time()
        sent = await rt.deadlines.deliver()
        seconds = time.perf_counter() - began
        cpu = time.process_time() - cpu0
        figures["fake_cpu_share"] = (proc_cpu(fake.pid) - fake_cpu0) / seconds
        figures["bot_cpu_share"] = cpu / seconds
        figures["machine_busy_cores"] = (machine_busy() - busy0) / seconds
        figures["lifted_sent"] = sent
        figures["lifted_calls"] = await _fake_calls(fake) - before
        figures["lifted_s"] = seconds
        figures["lifted_per_s"] = sent / seconds if seconds else 0.0
        figures["lifted_cpu_s_per_1000"] = cpu / max(sent, 1) * 1000
        async with rt.engine.connect() as conn:
            figures["lifted_marked_sent"] = float(
                await conn.scalar(
                    text("SELECT count(*) FROM outbox WHERE outcome = 'sent' AND key LIKE :prefix"),
                    {"prefix": f"broadcast:{second.broadcast.id}:%"},
                )
                or 0
            )
    finally:
        await _close(app)
    print(f"  ({note})")
    return figures


async def press_hook_cost(url: str, rules_path: Path, presses: int = 20_000) -> dict[str, float]:
    """What the "reachable again" check (``handlers.reachable``, a handler run before the
    others for every update) adds to each update: the CPU of PTB's ``process_update`` for an
    A/B/C press reaching a no-op handler, without and with the check (nobody flagged, the
    common case), best of 3 rounds each. No network: the update is handed over directly."""
    from telegram import Bot, Update
    from telegram.ext import Application, CallbackQueryHandler

    from bench.suite import bench_engine
    from bot.config import load_rules
    from contest.clock import SystemClock
    from contest.services import ContestService
    from handlers import reachable
    from handlers.common import DEPS_KEY, Deps
    from storage.uow import SqlUnitOfWorkFactory

    rules = load_rules(rules_path)
    engine = bench_engine(url, None)
    service = ContestService(SqlUnitOfWorkFactory(engine), SystemClock(), rules)
    await service.outbox.load_unreachable()
    bot = Bot("1:BENCH")
    update = Update.de_json(
        {
            "update_id": 1,
            "callback_query": {
                "id": "1",
                "from": {"id": 777, "is_bot": False, "first_name": "A"},
                "chat_instance": "1",
                "data": "x:a:1:0:0",
                "message": {
                    "message_id": 1,
                    "date": 0,
                    "chat": {"id": 777, "type": "private"},
                    "text": "Câu 1/20",
                },
            },
        },
        bot,
    )
    assert update is not None

    async def noop(update: Any, context: Any) -> None:
        return None

    figures: dict[str, float] = {}
    try:
        for label, hooked in (("without", False), ("with", True), ("without", False)):
            app = Application.builder().bot(bot).updater(None).build()
            app.bot_data[DEPS_KEY] = Deps(service, rules, SystemClock(), frozenset())
            app.add_handler(CallbackQueryHandler(noop))
            if hooked:
                for handler in reachable.handlers():
                    app.add_handler(handler, group=reachable.GROUP)
            app._initialized = True  # no getMe: the update is processed, nothing is sent
            best = float("inf")
            for _ in range(3):
                cpu0 = time.process_time()
                for _ in range(presses):
                    await app.process_update(update)
                best = min(best, (time.process_time() - cpu0) / presses)
            figures[label] = min(figures.get(label, float("inf")), best)
    finally:
        await engine.dispose()
    figures["added_us"] = (figures["with"] - figures["without"]) * 1e6
    return figures


async def main_async(args: argparse.Namespace) -> int:
    from bench.suite import TOKEN, Child, write_rules
    from bot.config import load_rules

    folder = Path(tempfile.mkdtemp(prefix="contest-broadcast-"))
    fake = None
    try:
        rules_path = write_rules(folder)
        rules = load_rules(rules_path)
        url = f"sqlite+aiosqlite:///{folder / 'broadcast.db'}"
        print(
            f"Seeding {args.people:,} contestants ({args.people - args.recipients:,} with 2 "
            f"attempts, {args.recipients:,} without) …",
            flush=True,
        )
        began = time.perf_counter()
        uids = await seed(url, rules, args.people, args.recipients)
        print(f"  seeded in {time.perf_counter() - began:.1f} s", flush=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEST_")}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        fake = await Child.start(
            "fake Bot API",
            ["--serve-fake", "--token", TOKEN],
            env,
            folder,
            folder / "fake.log",
        )
        base_url = str((await fake.read(30))["base_url"])
        cards = folder / "chats.json"
        chats = [{"uid": uid, "text": "(chat)", "buttons": []} for uid in [ORGANISER, *uids]]
        cards.write_text(json.dumps(chats), encoding="utf-8")
        await fake.call({"cmd": "setup", "file": str(cards), "drive": False})
        f = await measure(url, base_url, TOKEN, rules_path, fake, args.window)
        hook = await press_hook_cost(url, rules_path)
    finally:
        if fake is not None:
            await fake.close(json.dumps({"cmd": "quit"}))
        if args.keep:
            print(f"(files kept in {folder})")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    recipients = int(f["recipients"])
    print(f"\nBroadcast to {recipients:,} (segment: registered, no attempt yet), SQLite")
    print(f"  preview (recipient count + draft): {f['preview_s'] * 1000:.0f} ms")
    print(
        f"  confirm = fan-out of {int(f['fanout_rows']):,} outbox rows in one transaction: "
        f"{f['fanout_s'] * 1000:.0f} ms"
    )
    paced_total = recipients / f["paced_per_s"] if f["paced_per_s"] else float("inf")
    print(
        f"  pacing on (30/s, 1 s per chat): {f['paced_per_s']:.1f} messages/s over "
        f"{f['paced_window_s']:.1f} s => {recipients:,} in about {paced_total / 60:.1f} min"
    )
    lifted_ok = f["lifted_per_s"] >= TARGET_LIFTED_PER_S
    print(
        f"  pacing lifted: {int(f['lifted_sent']):,} messages in {f['lifted_s']:.2f} s = "
        f"{f['lifted_per_s']:,.0f} messages/s; {f['lifted_cpu_s_per_1000']:.2f} CPU s per "
        f"1,000 (this process: bot + SQLite); {int(f['lifted_marked_sent']):,} rows marked sent"
    )
    print(
        f"  during it: this process {f['bot_cpu_share'] * 100:.0f}% of a core, the fake Bot "
        f"API {f['fake_cpu_share'] * 100:.0f}%; {f['machine_busy_cores']:.2f} of "
        f"{os.cpu_count()} cores busy on the machine"
    )
    print(
        f"  {'PASS' if lifted_ok else 'FAIL'}  at least {TARGET_LIFTED_PER_S:,.0f} messages/s "
        "with pacing lifted"
    )
    print(
        f"\nReachable-again check on every update: PTB's process_update of an A/B/C press "
        f"{hook['without'] * 1e6:.0f} µs without it, {hook['with'] * 1e6:.0f} µs with it: "
        f"{hook['added_us']:+.1f} µs per update (the full press costs about 1,400 µs of CPU "
        "at the ceiling, README)"
    )
    return 0 if lifted_ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console_broadcast")
    parser.add_argument("--people", type=int, default=100_000, help="contestants (100,000)")
    parser.add_argument("--recipients", type=int, default=10_000, help="of them, without attempt")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured paced")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
