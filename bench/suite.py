"""``contest-bot bench``: how fast the bot is on this machine, in figures.

What runs where (``--help`` lists the knobs)::

    orchestrator (this command)      seeds the databases, starts the processes below,
                                     runs the data sections in worker processes, prints
    fake process                     fakes.telegram.FakeBotApi + the load driver (the users)
    bot process                      the real bot (build_application + bot.app.start, system
                                     clock) or a no-op PTB bot, on aiohttp or httpx

The load driver lives inside the fake server's process and plays the contestants through
the fake's Python API: it queues a callback query (a press of A/B/C, or "Bắt đầu" when an
attempt is over and another is allowed) and hears the bot's ``editMessageText`` through an
``on_bot_call`` listener. Its CPU is therefore spent in the fake's process, never in the
bot's. Latency is measured from the moment ``getUpdates`` hands the update to the bot
(``update_delivered_at``) to the moment the edit for that chat arrives at the fake.

Two drives: *open loop* (presses offered at a fixed rate whatever the bot does, for the
latency target) and *closed loop* (a fixed number of presses always in flight, to find the
ceiling). CPU figures come from ``/proc/<pid>/stat`` of the bot process (all its threads,
so SQLite's worker threads count; a PostgreSQL server's own CPU does not), peak memory from
``VmHWM`` in ``/proc/<pid>/status``.

The data sections (ranking, XLSX export, notification delivery) run in short-lived worker
processes so that their peak memory is their own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

# PTB 22 warns on every RetryAfter unless durations are timedeltas.
os.environ.setdefault("PTB_TIMEDELTA", "1")

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from contest.model import Question
    from contest.rules import ContestRules
    from fakes.telegram import FakeBotApi

SECTIONS = ("load", "zalo", "rearm", "notify", "ranking", "export")
TOKEN = "424242:BENCH-TOKEN"
PROTOCOL_PREFIX = "@@bench "
START_DATA = "x:start"
ANSWER_PREFIX = "x:a:"  # an answer button's callback data
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLES = PROJECT_ROOT / "storage" / "samples"
OUR_PACKAGES = ("bot", "contest", "handlers", "scheduler", "storage")
PRESS_TIMEOUT = 15.0  # a press without an edit for this long is counted as lost

# Targets from the issue.
TARGET_NOOP_SHARE = 0.60
TARGET_HTTPX_FACTOR = 4.0
TARGET_P99_MS = 50.0
TARGET_REARM_S = 3.0
TARGET_RANKING_S = 2.0
TARGET_RSS_MB = 250.0
DISTURBED_CORES = 0.15  # other processes' load above this makes a window's figures suspect


# ============================================================================================
# /proc readings
# ============================================================================================


def _stat_fields(path: str) -> list[str]:
    with open(path, encoding="ascii", errors="replace") as handle:
        data = handle.read()
    return data[data.rindex(")") + 2 :].split()  # fields from #3 (state) on


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (every thread)."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a live process (thread id -> seconds)."""
    result: dict[int, float] = {}
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError, ValueError):
                fields = _stat_fields(f"/proc/{pid}/task/{name}/stat")
                result[int(name)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return result


def machine_busy() -> float:
    """CPU seconds spent busy by the whole machine since boot (all cores, /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def processes_cpu(command: str) -> float:
    """CPU seconds of every live process with this command name (e.g. the PostgreSQL server's
    backends); 0.0 when there is none."""
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as handle:
                data = handle.read()
            if data[data.index("(") + 1 : data.rindex(")")] == command:
                fields = data[data.rindex(")") + 2 :].split()
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a live process, in MB."""
    values: dict[str, float] = {}
    with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024  # kB -> MB
    return {"rss_mb": values.get("VmRSS", 0.0), "peak_rss_mb": values.get("VmHWM", 0.0)}


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0.0 when empty)."""
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def latency_summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "count": len(ordered),
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p95_ms": percentile(ordered, 0.95) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "max_ms": (ordered[-1] if ordered else 0.0) * 1000,
        "mean_ms": (sum(ordered) / len(ordered) if ordered else 0.0) * 1000,
    }


def emit(obj: dict[str, Any]) -> None:
    """One protocol line on stdout for the orchestrator."""
    sys.stdout.write(PROTOCOL_PREFIX + json.dumps(obj) + "\n")
    sys.stdout.flush()


async def read_stdin_line() -> str:
    return await asyncio.to_thread(sys.stdin.readline)


# ============================================================================================
# The load driver (runs inside the fake server's process)
# ============================================================================================


@dataclass(eq=False)
class Contestant:
    uid: int
    message_id: int
    next_data: str
    starts_left: int  # further attempts this contestant will start
    active: bool = True


@dataclass(eq=False)
class Press:
    contestant: Contestant
    kind: str  # "answer" or "start"
    query_id: str
    update_id: int
    issued: float
    future: asyncio.Future[bool]


@dataclass
class Record:
    kind: str
    ok: bool
    issued: float
    delivered: float | None
    done: float


class LoadDriver:
    """Plays the contestants against the bot through the fake's Python API."""

    def __init__(self, api: FakeBotApi, seed: int = 1) -> None:
        self.api = api
        self.rng = random.Random(seed)
        self.ready: deque[Contestant] = deque()
        self.outstanding: dict[int, Press] = {}  # chat id -> the press awaiting its edit
        self.by_query: dict[str, Press] = {}
        self.records: list[Record] = []
        self.errors: list[str] = []
        api.on_bot_call(self._on_bot_call)

    # -- set-up ---------------------------------------------------------------------------

    def setup(self, path: str, *, drive: bool) -> int:
        """Create the users and the exam message each of them sees (from a JSON file)."""
        with open(path, encoding="utf-8") as handle:
            people = json.load(handle)
        for person in people:
            user = self.api.user(int(person["uid"]), first_name="Thí sinh")
            buttons = person.get("buttons") or []
            markup = (
                {"inline_keyboard": [[{"text": t, "callback_data": d} for t, d in buttons]]}
                if buttons
                else None
            )
            message = user.chat.add_message(
                True,
                dict(self.api.bot_user),
                text=person["text"],
                raw_text=person["text"],
                reply_markup=markup,
            )
            if drive:
                first = self.rng.choice([d for _, d in buttons]) if buttons else START_DATA
                self.ready.append(
                    Contestant(user.id, message.message_id, first, int(person["starts_left"]))
                )
        return len(people)

    # -- hearing the bot ----------------------------------------------------------------------

    def _on_bot_call(self, method: str, params: dict[str, Any], t: float) -> None:
        if method == "editMessageText":
            chat_id = params.get("chat_id")
            press = self.outstanding.pop(chat_id, None) if isinstance(chat_id, int) else None
            if press is None:
                return
            self.by_query.pop(press.query_id, None)
            contestant = press.contestant
            markup = params.get("reply_markup")
            choices = []
            if isinstance(markup, dict):
                choices = [
                    str(button["callback_data"])
                    for row in markup.get("inline_keyboard", [])
                    for button in row
                    if "callback_data" in button
                ]
            # Only A/B/C go on with the attempt: a result's own choices (feedback on it,
            # say) mean the attempt is over.
            choices = [c for c in choices if c.startswith(ANSWER_PREFIX)]
            if choices:
                contestant.next_data = self.rng.choice(choices)
            elif contestant.starts_left > 0:  # attempt over: start the next one
                contestant.starts_left -= 1
                contestant.next_data = START_DATA
            else:
                contestant.active = False
            self._complete(press, True, t)
        elif method == "answerCallbackQuery" and params.get("text"):
            # A press the bot refused (stale, finished...): no edit will come.
            press = self.by_query.pop(str(params.get("callback_query_id")), None)
            if press is None:
                return
            self.outstanding.pop(press.contestant.uid, None)
            press.contestant.active = False
            if len(self.errors) < 20:
                self.errors.append(str(params.get("text")))
            self._complete(press, False, t)

    def _complete(self, press: Press, ok: bool, t: float) -> None:
        delivered = self.api.update_delivered_at.get(press.update_id)
        self.records.append(Record(press.kind, ok, press.issued, delivered, t))
        if not press.future.done():
            press.future.set_result(ok)

    # -- pressing -----------------------------------------------------------------------------

    async def _press(self, contestant: Contestant) -> Press:
        user = self.api.users[contestant.uid]
        data = contestant.next_data
        issued = time.monotonic()
        query_id = await user.press_data(data, contestant.message_id)
        press = Press(
            contestant,
            "start" if data == START_DATA else "answer",
            query_id,
            self.api.callback_update_ids[query_id],
            issued,
            asyncio.get_running_loop().create_future(),
        )
        self.outstanding[contestant.uid] = press
        self.by_query[query_id] = press
        return press

    def _release(self, contestant: Contestant) -> None:
        if contestant.active:
            self.ready.append(contestant)

    def _released(self, contestant: Contestant, _future: asyncio.Future[bool]) -> None:
        self._release(contestant)

    async def _open_loop(self, rate: float, t0: float, t_end: float, window: float) -> int:
        """Offer presses at ``rate``/s from ``t0`` to ``t_end``; returns how many offers in
        the window found no idle contestant."""
        interval = 1.0 / rate
        issued = 0
        unserved = 0
        while True:
            now = time.monotonic()
            if now >= t_end:
                return unserved
            due = t0 + issued * interval
            if due > now:
                await asyncio.sleep(due - now)
                continue
            while t0 + issued * interval <= now:
                issued += 1
                if not self.ready:
                    if now >= window:
                        unserved += 1
                    continue
                contestant = self.ready.popleft()
                press = await self._press(contestant)
                press.future.add_done_callback(functools.partial(self._released, contestant))

    async def _closed_loop(self, concurrency: int, t_end: float) -> None:
        """Keep ``concurrency`` presses in flight until ``t_end``."""

        async def user_slot() -> None:
            while time.monotonic() < t_end:
                if not self.ready:
                    await asyncio.sleep(0.002)
                    continue
                contestant = self.ready.popleft()
                press = await self._press(contestant)
                await press.future
                self._release(contestant)

        await asyncio.gather(*(user_slot() for _ in range(concurrency)))

    async def _watchdog(self) -> None:
        """Give up on presses that got no answer for PRESS_TIMEOUT seconds."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for press in list(self.outstanding.values()):
                if now - press.issued > PRESS_TIMEOUT:
                    self.outstanding.pop(press.contestant.uid, None)
                    self.by_query.pop(press.query_id, None)
                    press.contestant.active = False
                    self.records.append(Record(press.kind, False, press.issued, None, now))
                    if not press.future.done():
                        press.future.set_result(False)

    async def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        """One measured load: warm-up, then the window; returns the figures."""
        mode = str(spec["mode"])
        warmup, duration = float(spec["warmup"]), float(spec["duration"])
        pid = int(spec["bot_pid"])
        db_process = str(spec.get("db_process") or "")  # the database server's command name
        self.records = []
        self.errors = []
        t0 = time.monotonic()
        t_begin, t_end = t0 + warmup, t0 + warmup + duration
        readings: dict[str, Any] = {}

        async def sample() -> None:
            await asyncio.sleep(max(t_begin - time.monotonic(), 0))
            readings["cpu0"], readings["threads0"] = proc_cpu(pid), thread_cpu(pid)
            readings["own0"] = time.process_time()
            readings["machine0"] = machine_busy()
            readings["db0"] = processes_cpu(db_process) if db_process else 0.0
            readings["t_begin"] = time.monotonic()
            await asyncio.sleep(max(t_end - time.monotonic(), 0))
            readings["cpu1"], readings["threads1"] = proc_cpu(pid), thread_cpu(pid)
            readings["own1"] = time.process_time()
            readings["machine1"] = machine_busy()
            readings["db1"] = processes_cpu(db_process) if db_process else 0.0
            readings["t_end"] = time.monotonic()

        sampler = asyncio.create_task(sample())
        watchdog = asyncio.create_task(self._watchdog())
        unserved = 0
        try:
            if mode == "rate":
                unserved = await self._open_loop(float(spec["rate"]), t0, t_end, t_begin)
            else:
                await self._closed_loop(int(spec["concurrency"]), t_end)
            await sampler
            # Drain: wait for what is still in flight (not counted in the window).
            pending = [p.future for p in self.outstanding.values()]
            if pending:
                await asyncio.wait(pending, timeout=PRESS_TIMEOUT + 2)
        finally:
            watchdog.cancel()
            sampler.cancel()
        lost = len(self.outstanding)
        for press in list(self.outstanding.values()):
            self._release(press.contestant)
        self.outstanding.clear()
        self.by_query.clear()
        memory = proc_memory(pid)
        return self._figures(spec, readings, unserved, lost, memory, pid)

    def _figures(
        self,
        spec: dict[str, Any],
        readings: dict[str, Any],
        unserved: int,
        lost: int,
        memory: dict[str, float],
        pid: int,
    ) -> dict[str, Any]:
        t_begin, t_end = readings["t_begin"], readings["t_end"]
        window = t_end - t_begin
        done = [r for r in self.records if t_begin <= r.done < t_end]
        answers = sum(1 for r in done if r.ok and r.kind == "answer")
        starts = sum(1 for r in done if r.ok and r.kind == "start")
        failed = sum(1 for r in done if not r.ok)
        issued_in = [r for r in self.records if t_begin <= r.issued < t_end and r.ok]
        latency = [r.done - r.delivered for r in issued_in if r.delivered is not None]
        answer_latency = [
            r.done - r.delivered
            for r in issued_in
            if r.kind == "answer" and r.delivered is not None
        ]
        start_latency = [
            r.done - r.delivered for r in issued_in if r.kind == "start" and r.delivered is not None
        ]
        pickup = [r.delivered - r.issued for r in issued_in if r.delivered is not None]
        cpu = readings["cpu1"] - readings["cpu0"]
        main0 = readings["threads0"].get(pid, 0.0)
        main_cpu = min(readings["threads1"].get(pid, 0.0) - main0, cpu)
        fake_cpu = readings["own1"] - readings["own0"]
        machine = readings["machine1"] - readings["machine0"]
        database = max(readings["db1"] - readings["db0"], 0.0)
        per_1000 = cpu / answers * 1000 if answers else 0.0
        return {
            "mode": spec["mode"],
            "offered_rate": spec.get("rate"),
            "concurrency": spec.get("concurrency"),
            "window_s": window,
            "answers": answers,
            "starts": starts,
            "failed": failed,
            "lost": lost,
            "unserved_offers": unserved,
            "answers_per_s": answers / window if window else 0.0,
            "updates_per_s": (answers + starts) / window if window else 0.0,
            "latency_answer": latency_summary(answer_latency),
            "latency_start": latency_summary(start_latency),
            "latency_all": latency_summary(latency),
            "pickup": latency_summary(pickup),
            "bot_cpu_s": cpu,
            "bot_main_thread_cpu_s": main_cpu,
            "bot_other_threads_cpu_s": cpu - main_cpu,
            "bot_cpu_share": cpu / window if window else 0.0,
            "cpu_s_per_1000_answers": per_1000,
            "fake_cpu_s": fake_cpu,
            "fake_cpu_share": fake_cpu / window if window else 0.0,
            "fake_cpu_s_per_1000_answers": fake_cpu / answers * 1000 if answers else 0.0,
            "machine_busy_cores": machine / window if window else 0.0,
            "db_server_cpu_s": database,
            "db_server_cpu_share": database / window if window else 0.0,
            "other_load_cores": (
                max(machine - cpu - fake_cpu - database, 0.0) / window if window else 0.0
            ),
            "bot_rss_mb": memory["rss_mb"],
            "bot_peak_rss_mb": memory["peak_rss_mb"],
            "errors": self.errors,
            "contestants_left": len(self.ready),
        }


async def _serve_fake(args: argparse.Namespace) -> int:
    """The fake Bot API server plus the load driver; commands come as JSON lines on stdin."""
    from fakes.telegram import FakeBotApi

    api = FakeBotApi(token=args.token, port=0, max_calls=1_000)
    await api.start()
    driver = LoadDriver(api)
    emit({"event": "ready", "base_url": api.base_url, "pid": os.getpid()})
    try:
        while True:
            line = await read_stdin_line()
            if not line:
                break
            command = json.loads(line)
            name = command.get("cmd")
            try:
                if name == "setup":
                    count = driver.setup(command["file"], drive=bool(command.get("drive", True)))
                    reply: dict[str, Any] = {"users": count}
                elif name == "reset":
                    driver.ready.clear()
                    api.drop_pending_updates()
                    reply = {"ok": True}
                elif name == "load":
                    reply = await driver.run(command)
                elif name == "stats":
                    reply = {"calls": dict(api.call_counts)}
                elif name == "quit":
                    emit({"ok": True})
                    break
                else:
                    reply = {"error": f"unknown command {name!r}"}
            except Exception as exc:  # report, keep serving
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            emit(reply)
    finally:
        await api.stop()
    return 0


# ============================================================================================
# The bot process (the real bot, or the no-op baseline)
# ============================================================================================

NOOP_TEXT = (
    "<b>Vòng 1 · Lần thi 1/2</b>\n<b>Câu {n}/20</b> · ⏱ Còn lại 19:59\n"
    "<i>Chương trình tổng thể CCHC 2021-2030</i>\n\n"
    "<b>Chương trình tổng thể cải cách hành chính nhà nước giai đoạn 2021-2030 được ban hành "
    "kèm theo văn bản nào?</b>\n\n"
    "<b>A.</b> Nghị quyết số 76/NQ-CP ngày 15/7/2021 của Chính phủ\n"
    "<b>B.</b> Quyết định số 06/QĐ-TTg ngày 06/01/2022 của Thủ tướng Chính phủ\n"
    "<b>C.</b> Nghị quyết số 30c/NQ-CP ngày 08/11/2011 của Chính phủ"
)


def bench_engine(url: str, pg_schema: str | None) -> AsyncEngine:
    """The storage engine, in a PostgreSQL schema of its own when one is given."""
    from storage.db import create_engine

    if pg_schema:
        return create_engine(url, connect_args={"server_settings": {"search_path": pg_schema}})
    return create_engine(url)


def build_noop_application(settings: Any) -> Any:
    """A bot that answers every press and edits the message, nothing else; the same request
    backend and update processor as ``bot.app.build_application``."""
    from telegram import Update
    from telegram.ext import Application, CallbackQueryHandler, ContextTypes

    from bot.processor import PerChatUpdateProcessor
    from bot.request import SharedSession, build_request

    counter = [0]

    async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer()
        counter[0] += 1
        await query.edit_message_text(
            NOOP_TEXT.format(n=counter[0]),
            parse_mode="HTML",
            reply_markup=getattr(query.message, "reply_markup", None),
        )

    http = SharedSession()  # like the real bot: one session under both request objects
    app = (
        Application.builder()
        .token(settings.bot_token.get_secret_value())
        .base_url(settings.bot_api_url)
        .request(build_request(settings.http_backend, pool_size=128, shared=http))
        .get_updates_request(build_request(settings.http_backend, pool_size=1, shared=http))
        .concurrent_updates(PerChatUpdateProcessor(256))
        .build()
    )
    app.add_handler(CallbackQueryHandler(on_press))
    return app


async def _serve_bot(args: argparse.Namespace) -> int:
    import cProfile
    import logging

    from bot.app import build_application, runtime, start, stop
    from bot.config import load_rules
    from bot.settings import Settings

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = Settings()
    timing: dict[str, Any] = {"pid": os.getpid(), "backend": settings.http_backend}
    if args.noop:
        app = build_noop_application(settings)
    else:
        rules = load_rules(settings.config_path())
        engine = bench_engine(settings.database_url, args.pg_schema)
        app = build_application(settings, rules, engine=engine)
        deadlines = runtime(app).deadlines
        rearm = deadlines.rearm

        async def timed_rearm() -> int:
            began = time.perf_counter()
            count = await rearm()
            timing["rearm_s"] = time.perf_counter() - began
            timing["rearmed"] = count
            return count

        deadlines.rearm = timed_rearm  # type: ignore[method-assign]
    began = time.perf_counter()
    cpu0 = time.process_time()
    await start(app, poll_timeout=settings.poll_timeout)
    timing["startup_s"] = time.perf_counter() - began
    timing["startup_cpu_s"] = time.process_time() - cpu0
    timing.update(proc_memory(os.getpid()))
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    emit({"event": "ready", **timing})
    try:
        while (await read_stdin_line()).strip() not in ("", "stop"):
            pass
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        await stop(app)
    emit({"event": "stopped"})
    return 0


# ============================================================================================
# Worker processes: ranking, export, notifications
# ============================================================================================


async def _serve_worker(args: argparse.Namespace) -> int:
    from bot.app import tune_gc

    # Ranking, export and delivery run inside the bot process, under its collector
    # settings: measure them under the same ones.
    tune_gc()
    engine = bench_engine(args.database_url, args.pg_schema)
    try:
        if args.worker == "ranking":
            result = await _work_ranking(engine, args)
        elif args.worker == "export":
            result = await _work_export(engine, args)
        elif args.worker == "notify":
            result = await _work_notify(engine, args)
        else:
            raise SystemExit(f"unknown worker {args.worker!r}")
    finally:
        await engine.dispose()
    result.update(proc_memory(os.getpid()))
    emit(result)
    return 0


async def _work_ranking(engine: AsyncEngine, args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import func, select

    from bot.config import load_rules
    from contest.clock import SystemClock
    from contest.scoring import qualify, rank
    from contest.services import ContestService
    from storage.models import AttemptRow
    from storage.uow import SqlUnitOfWorkFactory

    rules = load_rules(Path(args.config))
    uow = SqlUnitOfWorkFactory(engine)
    async with uow(write=False) as warm:  # open the pool first: not part of the figure
        await warm.questions.count()
    began = time.perf_counter()
    async with uow(write=False) as work:
        best = await work.attempts.best_results(1)  # each person's counting attempt, in SQL
    loaded = time.perf_counter()
    ranked = rank(best)
    chosen = qualify(ranked, rules.round2.qualifiers, rules.round2.min_ratio)
    finished = time.perf_counter()
    pure = []
    for _ in range(3):  # the in-memory part again, best of 3
        again = time.perf_counter()
        qualify(rank(best), rules.round2.qualifiers, rules.round2.min_ratio)
        pure.append(time.perf_counter() - again)
    # The same through the use case the bot calls (ContestService.round2_qualifiers).
    service = ContestService(uow, SystemClock(), rules)
    started = time.perf_counter()
    through_service = await service.results.round2_qualifiers()
    use_case_s = time.perf_counter() - started
    assert len(through_service.qualified) == len(chosen.qualified)
    async with engine.connect() as conn:
        attempts = await conn.scalar(select(func.count()).select_from(AttemptRow))
    return {
        "attempts": int(attempts or 0),
        "ranked": len(ranked),
        "qualified": len(chosen.qualified),
        "tied_at_cut": len(chosen.tied_at_cut),
        "load_s": loaded - began,
        "rank_qualify_s": finished - loaded,
        "total_s": finished - began,
        "use_case_s": use_case_s,
        "pure_best_s": min(pure),
    }


async def _work_export(engine: AsyncEngine, args: argparse.Namespace) -> dict[str, Any]:
    """The organisers' workbook (/xuat) as its worker process writes it."""
    from bot.config import load_rules
    from contest.ports import ExportRequest
    from storage.export import write_workbook

    rules = load_rules(Path(args.config))
    target = Path(args.output)
    began = time.perf_counter()
    cpu0 = time.process_time()
    request = ExportRequest(1, rules.quota, datetime.now(UTC))
    written = await write_workbook(engine, request, target)
    return {
        "rows": written.ranked,
        "contestants": written.contestants,
        "attempts": written.attempts,
        "seconds": time.perf_counter() - began,
        "cpu_s": time.process_time() - cpu0,
        "file_mb": target.stat().st_size / 1e6,
    }


SEND_LIMITS = {"send_rate": 1_000_000.0, "chat_send_interval": 0.0}


def send_limit_overrides() -> tuple[dict[str, Any], str]:
    """Settings that pace bulk sends, raised for the measurement (and a note saying so)."""
    from bot.settings import Settings

    fields = Settings.model_fields
    overrides = {name: value for name, value in SEND_LIMITS.items() if name in fields}
    if not overrides:
        return {}, "no send-rate setting in bot/settings.py: deliver() is unthrottled"
    return overrides, "pacing lifted: " + ", ".join(f"{k}={v:g}" for k, v in overrides.items())


async def _work_notify(engine: AsyncEngine, args: argparse.Namespace) -> dict[str, Any]:
    """Time ``DeadlineScheduler.deliver()`` of an application set up like at start-up (its
    ``post_init`` runs: migrations, the bulk-send bot, the lease), with pacing lifted."""
    from bot.app import build_application, runtime
    from bot.config import load_rules
    from bot.settings import Settings

    overrides, note = send_limit_overrides()
    settings = Settings(**overrides)
    rules = load_rules(settings.config_path())
    app = build_application(settings, rules, engine=engine, polling=False)
    await app.initialize()
    try:
        if app.post_init is not None:
            await app.post_init(app)  # the job queue is not started: no sweep runs by itself
        deadlines = runtime(app).deadlines
        began = time.perf_counter()
        cpu0 = time.process_time()
        sent = await deadlines.deliver()
        seconds = time.perf_counter() - began
        cpu = time.process_time() - cpu0
    finally:
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)
    return {"sent": sent, "seconds": seconds, "cpu_s": cpu, "note": note}


# ============================================================================================
# Seeding (orchestrator): direct inserts through the storage layer
# ============================================================================================


@dataclass
class Bank:
    questions: list[Question]
    answers: dict[int, int]
    wards: list[int]
    units: list[int]


# Where the shipped example's dates move to, relative to now (every other value is kept).
RULE_DATES = {
    ("campaign", "starts"): timedelta(days=-2),
    ("campaign", "ends"): timedelta(days=2),
    ("round1", "opens"): timedelta(days=-1),
    ("round1", "closes"): timedelta(days=1),
    ("round2", "opens"): timedelta(days=3),
    ("round2", "closes"): timedelta(days=3, hours=4),
}


def write_rules(folder: Path) -> Path:
    """The shipped ``contest.example.toml`` with its dates moved so that round 1 is open now."""
    from contest.rules import LOCAL_TZ

    now = datetime.now(LOCAL_TZ).replace(microsecond=0, tzinfo=None)
    section = ""
    lines = []
    example = PROJECT_ROOT / "contest.example.toml"
    for line in example.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped[1 : stripped.index("]")]
        key = stripped.split("=", 1)[0].strip() if "=" in stripped else ""
        delta = RULE_DATES.get((section, key))
        if delta is not None:
            line = f"{key} = {(now + delta).strftime('%Y-%m-%dT%H:%M:%S')}"
        lines.append(line)
    path = folder / "contest-bench.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def seed_bank(engine: AsyncEngine, rules: ContestRules) -> Bank:
    """The sample question bank and units, imported like ``contest-bot import-*`` does."""
    from sqlalchemy import select

    from contest.clock import SystemClock
    from contest.importing import validate_questions, validate_units
    from contest.services import ContestService
    from storage import models as m
    from storage.files import read_table
    from storage.uow import SqlUnitOfWorkFactory

    uow = SqlUnitOfWorkFactory(engine)
    service = ContestService(uow, SystemClock(), rules)
    header, rows = read_table(SAMPLES / "questions.csv")
    await service.console.import_questions(validate_questions(header, rows))
    header, rows = read_table(SAMPLES / "units.csv")
    await service.console.import_units(validate_units(header, rows))
    async with uow(write=False) as work:
        questions = await work.questions.catalog()
    async with engine.connect() as conn:
        units = (await conn.execute(select(m.UnitRow.id, m.UnitRow.kind))).all()
    return Bank(
        questions,
        {q.id: q.answer for q in questions},
        [u.id for u in units if u.kind == "phuong"],
        [u.id for u in units],
    )


async def _insert(engine: AsyncEngine, model: Any, rows: list[dict[str, Any]]) -> None:
    from sqlalchemy import insert

    async with engine.begin() as conn:
        for start in range(0, len(rows), 5_000):
            await conn.execute(insert(model), rows[start : start + 5_000])


async def seed_people(
    engine: AsyncEngine, bank: Bank, count: int, first_uid: int, rng: random.Random
) -> list[tuple[int, int]]:
    """``count`` registered people (a third citizens); returns (person id, telegram id)."""
    from sqlalchemy import select

    from storage import models as m

    now = datetime.now(UTC)
    rows = []
    for i in range(count):
        citizen = i % 3 == 0
        rows.append(
            {
                "full_name": f"Nguyễn Thị Thí Sinh {i + 1}",
                "birth_date": date(1970 + i % 35, 1 + i % 12, 1 + i % 28),
                "phone": f"09{i:08d}",
                "group": "citizen" if citizen else "civil_servant",
                "unit_id": None if citizen else rng.choice(bank.units),
                "position": None if citizen else ("leader" if i % 10 == 1 else "staff"),
                "ward_id": rng.choice(bank.wards) if citizen else None,
                "consent_at": now,
                "registered_at": now,
                "reminders_off": False,
            }
        )
    await _insert(engine, m.PersonRow, rows)
    async with engine.connect() as conn:
        # Phones are unique: find the new rows by theirs.
        found = (await conn.execute(select(m.PersonRow.id, m.PersonRow.phone))).all()
    by_phone = {row.phone: row.id for row in found}
    people = [(by_phone[row["phone"]], first_uid + i) for i, row in enumerate(rows)]
    await _insert(
        engine,
        m.AccountRow,
        [
            {
                "channel": "telegram",
                "external_id": str(uid),
                "person_id": person_id,
                "linked_at": now,
                "last_used_at": now,
            }
            for person_id, uid in people
        ],
    )
    return people


async def seed_attempts(
    engine: AsyncEngine,
    bank: Bank,
    people: list[tuple[int, int]],
    rng: random.Random,
    *,
    finished: bool,
) -> list[dict[str, Any]]:
    """One round-1 attempt per person with its 20 items: in progress at a random question
    (started 3-5 minutes ago), or closed by its deadline half an hour ago (with a result in
    the outbox). Returns, per person, what the fake must show: the exam card and its buttons.
    """
    from sqlalchemy import select

    from contest.selection import select_questions, shuffled_order
    from handlers.callbacks import answer_data
    from storage import models as m

    now = datetime.now(UTC)
    attempts = []
    plans = []
    for person_id, uid in people:
        started = now - timedelta(seconds=rng.uniform(200, 280) + (1800 if finished else 0))
        position = 20 if finished else rng.randrange(20)
        qids = select_questions(bank.questions, 20, rng)
        orders = [shuffled_order(rng) for _ in qids]
        choices = [rng.randrange(3) for _ in qids]
        correct = [orders[i][choices[i]] == bank.answers[q] for i, q in enumerate(qids)]
        answered = position if not finished else rng.randrange(21)
        plans.append((person_id, uid, position, qids, orders, choices, correct, answered, started))
        deadline = started + timedelta(minutes=20)
        attempts.append(
            {
                "person_id": person_id,
                "round": 1,
                "number": 1,
                "question_count": 20,
                "status": "expired" if finished else "in_progress",
                "started_at": started,
                "deadline_at": deadline,
                "finished_at": deadline if finished else None,
                "correct_count": sum(correct[:answered]) if finished else 0,
                "duration_seconds": 1200.0 if finished else None,
                "warned": 2 if finished else 0,
                "chat_id": uid,
                "message_id": 1,
            }
        )
    await _insert(engine, m.AttemptRow, attempts)
    async with engine.connect() as conn:
        ids = dict(
            (row.person_id, row.id)
            for row in await conn.execute(select(m.AttemptRow.id, m.AttemptRow.person_id))
        )
    items = []
    outbox = []
    cards = []
    for person_id, uid, position, qids, orders, choices, correct, answered, started in plans:
        attempt_id = ids[person_id]
        for i, qid in enumerate(qids):
            done = i < answered
            items.append(
                {
                    "attempt_id": attempt_id,
                    "position": i,
                    "question_id": qid,
                    "option_order": "".join(str(o) for o in orders[i]),
                    "choice": choices[i] if done else None,
                    "correct": correct[i] if done else None,
                    "answered_at": started + timedelta(seconds=10 * (i + 1)) if done else None,
                }
            )
        if finished:
            outbox.append(
                {
                    "key": f"attempt_result:{attempt_id}",
                    "person_id": person_id,
                    "kind": "attempt_result",
                    "payload": json.dumps({"attempt_id": attempt_id}),
                    "created_at": now,
                    "tries": 0,
                }
            )
        buttons = (
            []
            if finished
            else [[label, answer_data(attempt_id, position, i)] for i, label in enumerate("ABC")]
        )
        cards.append(
            {
                "uid": uid,
                "text": f"Vòng 1 · Lần thi 1/2\nCâu {position + 1}/20\n(bài thi)",
                "buttons": buttons,
                "starts_left": 1,
            }
        )
    await _insert(engine, m.AttemptItemRow, items)
    if outbox:
        await _insert(engine, m.OutboxRow, outbox)
        await _mark_counting(engine)
    return cards


async def seed_results(
    engine: AsyncEngine, people: list[tuple[int, int]], rng: random.Random
) -> int:
    """Two finished round-1 attempts per person (no items: ranking needs none)."""
    from storage import models as m

    window_start = datetime.now(UTC) - timedelta(days=10)
    rows = []
    for person_id, _uid in people:
        skill = rng.uniform(0.3, 0.95)
        for number in (1, 2):
            started = window_start + timedelta(seconds=rng.uniform(0, 9 * 86400))
            duration = min(round(rng.uniform(60, 1250), 6), 1200.0)
            rows.append(
                {
                    "person_id": person_id,
                    "round": 1,
                    "number": number,
                    "question_count": 20,
                    "status": "expired" if duration >= 1200 else "submitted",
                    "started_at": started,
                    "deadline_at": started + timedelta(minutes=20),
                    "finished_at": started + timedelta(seconds=duration),
                    "correct_count": sum(rng.random() < skill for _ in range(20)),
                    "duration_seconds": duration,
                    "warned": 0,
                    "chat_id": None,
                    "message_id": None,
                }
            )
    await _insert(engine, m.AttemptRow, rows)
    await _mark_counting(engine)
    return len(rows)


async def _mark_counting(engine: AsyncEngine) -> None:
    """Attempts seeded as rows, not finished through the bot: flag the counting ones as a
    finish would have."""
    from sqlalchemy import text

    from storage.presses import RECOUNT_ALL

    async with engine.begin() as conn:
        await conn.execute(text(RECOUNT_ALL))


# ============================================================================================
# The orchestrator
# ============================================================================================


class ChildError(RuntimeError):
    pass


class Child:
    """A child process speaking the JSON-lines protocol on stdin/stdout."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    async def start(
        cls, name: str, argv: list[str], env: dict[str, str], cwd: Path, log: Path
    ) -> Child:
        with open(log, "ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench",
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=env,
                cwd=cwd,
                limit=1 << 22,
            )
        return cls(name, proc, log)

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
            return "\n".join(text[-lines:])
        return ""

    async def read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChildError(f"{self.name}: no answer within {timeout:.0f} s")
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), remaining)
            except TimeoutError:
                continue
            if not line:
                await self.proc.wait()
                raise ChildError(
                    f"{self.name} exited with code {self.proc.returncode}:\n{self.log_tail()}"
                )
            text = line.decode("utf-8", "replace")
            if text.startswith(PROTOCOL_PREFIX):
                reply = json.loads(text[len(PROTOCOL_PREFIX) :])
                if isinstance(reply, dict) and "error" in reply:
                    raise ChildError(f"{self.name}: {reply['error']}")
                assert isinstance(reply, dict)
                return reply

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def call(self, command: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        await self.send(json.dumps(command))
        return await self.read(timeout)

    async def close(self, line: str | None = "stop", timeout: float = 20.0) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ConnectionError, OSError):
                if line is not None:
                    await self.send(line)
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@dataclass
class Database:
    url: str
    pg_schema: str | None
    engine: AsyncEngine


@dataclass
class Params:
    contestants: int
    rate: float
    duration: float
    warmup: float
    max_duration: float
    concurrency: int
    rearm: int
    rearm_load: float
    notify: int
    big: int
    zalo_people: int = 40


@dataclass
class Target:
    name: str
    value: float | None
    limit: float
    unit: str
    passed: bool | None
    detail: str = ""


@dataclass
class Bench:
    args: argparse.Namespace
    params: Params
    sections: list[str]
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="contest-bench-")))
    results: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    fake: Child | None = None
    base_url: str = ""
    rules_path: Path = Path()
    schemas: list[str] = field(default_factory=list)
    rules: Any = None

    # -- output ---------------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    # -- processes ------------------------------------------------------------------------

    @property
    def db_process(self) -> str:
        """Command name of the database server's processes (their CPU is reported apart)."""
        return "postgres" if self.args.database_url else ""

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTEST_", "PYTHONPATH"))}
        env.update(
            PTB_TIMEDELTA="1",
            PYTHONPATH=str(PROJECT_ROOT),
            CONTEST_BOT_TOKEN=TOKEN,
            CONTEST_BOT_API_URL=self.base_url,
            CONTEST_CONFIG=str(self.rules_path),
        )
        env.update(extra)
        return env

    def db_args(self, db: Database) -> list[str]:
        return ["--database-url", db.url] + (["--pg-schema", db.pg_schema] if db.pg_schema else [])

    async def start_fake(self) -> None:
        self.fake = await Child.start(
            "fake Bot API",
            ["--serve-fake", "--token", TOKEN],
            self.env(),
            self.folder,
            self.folder / "fake.log",
        )
        ready = await self.fake.read(30)
        self.base_url = str(ready["base_url"])

    async def start_bot(
        self, db: Database, *, backend: str = "aiohttp", noop: bool = False, profile: str = ""
    ) -> tuple[Child, dict[str, Any]]:
        argv = ["--serve-bot", *self.db_args(db)]
        if noop:
            argv.append("--noop")
        if profile:
            argv += ["--profile", profile]
        name = f"bot ({'no-op' if noop else 'full'}, {backend})"
        bot = await Child.start(
            name,
            argv,
            self.env(CONTEST_DATABASE_URL=db.url, CONTEST_HTTP_BACKEND=backend),
            self.folder,
            self.folder / "bot.log",
        )
        try:
            ready = await bot.read(120)
        except BaseException:
            await bot.close(None, timeout=5)
            raise
        return bot, ready

    async def worker(self, name: str, db: Database, *extra: str) -> dict[str, Any]:
        child = await Child.start(
            f"{name} worker",
            ["--worker", name, *self.db_args(db), "--config", str(self.rules_path), *extra],
            self.env(CONTEST_DATABASE_URL=db.url),
            self.folder,
            self.folder / f"{name}.log",
        )
        try:
            return await child.read(1800)
        finally:
            await child.close(None)

    @contextlib.asynccontextmanager
    async def database(self, name: str) -> AsyncIterator[Database]:
        """A fresh, migrated database: a SQLite file, or a PostgreSQL schema of its own."""
        from sqlalchemy import text

        from storage.db import create_engine, normalize_url
        from storage.schema import migrate

        url = self.args.database_url
        schema: str | None = None
        if url is None:
            url = f"sqlite+aiosqlite:///{self.folder / f'{name}.db'}"
        elif normalize_url(url).startswith("postgresql"):
            schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
            admin = create_engine(url)
            try:
                async with admin.begin() as conn:
                    await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            finally:
                await admin.dispose()
            self.schemas.append(schema)
        else:
            raise SystemExit("--database-url must be a sqlite or postgresql URL")
        engine = bench_engine(url, schema)
        try:
            await migrate(engine)
            yield Database(url, schema, engine)
        finally:
            await engine.dispose()
            if schema is not None:
                await self.drop_schema(url, schema)

    async def drop_schema(self, url: str, schema: str) -> None:
        from sqlalchemy import text

        from storage.db import create_engine

        admin = create_engine(url)
        try:
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            await admin.dispose()
        if schema in self.schemas:
            self.schemas.remove(schema)

    # -- machine --------------------------------------------------------------------------

    def machine(self) -> dict[str, Any]:
        model = ""
        with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        memory = ""
        with contextlib.suppress(OSError), open("/proc/meminfo") as handle:
            first = handle.readline().split()
            memory = f"{int(first[1]) / 1024 / 1024:.1f} GiB"
        versions = {}
        for name in (
            "python-telegram-bot",
            "aiohttp",
            "httpx",
            "SQLAlchemy",
            "aiosqlite",
            "asyncpg",
            "openpyxl",
            "APScheduler",
        ):
            try:
                versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                versions[name] = "not installed"
        import sqlite3

        return {
            "nproc": len(os.sched_getaffinity(0)),
            "cpu_count": os.cpu_count(),
            "cpu_model": model,
            "memory": memory,
            "kernel": platform.release(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "packages": versions,
            "database": "PostgreSQL" if self.args.database_url else "SQLite (file)",
        }

    def print_machine(self, info: dict[str, Any]) -> None:
        self.say(f"contest-bot bench{' --quick' if self.args.quick else ''}  ({_now_text()})")
        self.say(
            f"Machine: nproc {info['nproc']}, {info['cpu_model'] or 'unknown CPU'}, "
            f"{info['memory']} RAM, Linux {info['kernel']}"
        )
        packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
        self.say(f"Python {info['python']} (SQLite library {info['sqlite']}); {packages}")
        self.say(f"Database: {info['database']}")
        self.say(
            "Setup: the fake Bot API server and the load driver share one process, the bot runs "
            "in another;"
        )
        self.say(
            f"       all of them share these {info['nproc']} cores, so the harness takes CPU "
            "from the bot (its share is printed)."
        )

    # -- sections -------------------------------------------------------------------------

    async def run(self) -> int:
        info = self.machine()
        self.results["machine"] = info
        self.results["params"] = self.params.__dict__
        self.print_machine(info)
        from bot.config import load_rules

        self.rules_path = write_rules(self.folder)
        self.rules = load_rules(self.rules_path)
        needs_fake = any(s in self.sections for s in ("load", "rearm", "notify"))
        try:
            if needs_fake:
                await self.start_fake()
            if "load" in self.sections:
                await self.guard("load", self.section_load)
            if "zalo" in self.sections:
                await self.guard("zalo", self.section_zalo)
            if "rearm" in self.sections:
                await self.guard("rearm", self.section_rearm)
            if "notify" in self.sections:
                await self.guard("notify", self.section_notify)
            if "ranking" in self.sections or "export" in self.sections:
                await self.guard("ranking/export", self.section_data)
        finally:
            if self.fake is not None:
                await self.fake.close(json.dumps({"cmd": "quit"}))
            for schema in list(self.schemas):
                with contextlib.suppress(Exception):
                    await self.drop_schema(self.args.database_url, schema)
            if self.args.keep:
                self.say(f"\n(files kept in {self.folder})")
            else:
                shutil.rmtree(self.folder, ignore_errors=True)
        self.print_targets()
        self.results["targets"] = [t.__dict__ for t in self.targets]
        self.results["failures"] = self.failures
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(self.results, indent=2), encoding="utf-8")
            self.say(f"Figures written to {self.args.json}")
        return 1 if self.failures else 0

    async def guard(self, name: str, section: Callable[[], Any]) -> None:
        try:
            await section()
        except Exception as exc:  # one broken section must not hide the others' figures
            self.failures.append(f"{name}: {exc}")
            self.say(f"  !! section {name} failed: {exc}")

    async def seed_open(
        self, db: Database, count: int, first_uid: int, *, finished: bool = False
    ) -> tuple[int, float]:
        rng = random.Random(first_uid)
        began = time.perf_counter()
        bank = await seed_bank(db.engine, self.rules)
        people = await seed_people(db.engine, bank, count, first_uid, rng)
        cards = await seed_attempts(db.engine, bank, people, rng, finished=finished)
        seconds = time.perf_counter() - began
        path = self.folder / f"cards-{first_uid}.json"
        path.write_text(json.dumps(cards), encoding="utf-8")
        assert self.fake is not None
        await self.fake.call({"cmd": "reset"})
        await self.fake.call({"cmd": "setup", "file": str(path), "drive": not finished})
        return len(cards), seconds

    async def measure(
        self,
        db: Database,
        label: str,
        spec: dict[str, Any],
        *,
        backend: str = "aiohttp",
        noop: bool = False,
        profile: str = "",
    ) -> dict[str, Any]:
        assert self.fake is not None
        bot, ready = await self.start_bot(db, backend=backend, noop=noop, profile=profile)
        try:
            timeout = spec["warmup"] + spec["duration"] + PRESS_TIMEOUT + 60
            figures = await self.fake.call(
                {"cmd": "load", "bot_pid": bot.pid, "db_process": self.db_process, **spec}, timeout
            )
        finally:
            await bot.close()
        figures["startup"] = ready
        figures["label"] = label
        self.print_run(label, figures)
        return figures

    def print_run(self, label: str, f: dict[str, Any]) -> None:
        lat = f["latency_answer"]
        offered = (
            f"{f['offered_rate']:.0f}/s offered (open loop)"
            if f["mode"] == "rate"
            else f"closed loop, {f['concurrency']} presses in flight"
        )
        self.say(f"  {label} — {offered}, {f['window_s']:.1f} s window")
        self.say(
            f"    throughput: {f['answers_per_s']:.1f} answers/s "
            f"({f['answers']} answers + {f['starts']} attempt starts"
            + (f", {f['failed']} refused" if f["failed"] else "")
            + (f", {f['lost']} lost" if f["lost"] else "")
            + (
                f", {f['unserved_offers']} offers found no idle contestant"
                if f["unserved_offers"]
                else ""
            )
            + ")"
        )
        self.say(
            f"    latency (update handed to the bot -> its edit): p50 {lat['p50_ms']:.1f} ms, "
            f"p95 {lat['p95_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms"
            f"; wait in the fake before getUpdates: p50 {f['pickup']['p50_ms']:.1f} ms"
        )
        self.say(
            f"    bot CPU: {f['cpu_s_per_1000_answers']:.2f} CPU s per 1,000 answers; "
            f"{f['bot_cpu_share'] * 100:.0f}% of a core (event loop thread "
            f"{f['bot_main_thread_cpu_s'] / max(f['window_s'], 1e-9) * 100:.0f}%, other threads "
            f"{f['bot_other_threads_cpu_s'] / max(f['window_s'], 1e-9) * 100:.0f}%); "
            f"fake+driver {f['fake_cpu_share'] * 100:.0f}% of a core"
        )
        database = (
            f"PostgreSQL server {f['db_server_cpu_share'] * 100:.0f}% of a core "
            f"({f['db_server_cpu_s'] / max(f['answers'], 1) * 1000:.2f} CPU s per 1,000 answers), "
            if f["db_server_cpu_s"] > 0
            else ""
        )
        self.say(
            f"    machine: {f['machine_busy_cores']:.2f} of {os.cpu_count()} cores busy; "
            f"{database}{f['other_load_cores']:.2f} cores by processes outside this benchmark"
            + (" (!! disturbed)" if f["other_load_cores"] > DISTURBED_CORES else "")
        )
        self.say(
            f"    bot memory: peak RSS {f['bot_peak_rss_mb']:.1f} MB; start-up "
            f"{f['startup'].get('startup_s', 0.0):.2f} s"
        )
        if f["errors"]:
            self.say(f"    refusals seen: {sorted(set(f['errors']))[:3]}")

    async def section_load(self) -> None:
        p = self.params
        self.say(
            f"\n[load] {p.contestants:,} registered contestants, each with attempt 1 open at a "
            f"random question; warm-up {p.warmup:g} s before each window"
        )
        async with self.database("load") as db:
            count, seconds = await self.seed_open(db, p.contestants, 1_000_000)
            self.say(f"  seeded {count:,} contestants + their open attempts in {seconds:.1f} s")
            rate = {"mode": "rate", "rate": p.rate, "warmup": p.warmup, "duration": p.duration}
            closed = {
                "mode": "closed",
                "concurrency": p.concurrency,
                "warmup": p.warmup,
                "duration": p.max_duration,
            }
            runs = self.results.setdefault("load", {})
            runs["full_aiohttp_rate"] = await self.measure(
                db, f"full bot, aiohttp, {p.rate:.0f} answers/s offered", rate
            )
            runs["noop_aiohttp_rate"] = await self.measure(
                db, f"no-op PTB bot, aiohttp, {p.rate:.0f} answers/s offered", rate, noop=True
            )
            extra = (
                runs["full_aiohttp_rate"]["cpu_s_per_1000_answers"]
                - runs["noop_aiohttp_rate"]["cpu_s_per_1000_answers"]
            )
            self.say(
                f"  => at {p.rate:.0f} answers/s offered, what the contest adds to a no-op PTB bot "
                f"(handlers, use case, database): {extra:.2f} CPU s per 1,000 answers"
            )
            runs["full_aiohttp_max"] = await self.measure(db, "full bot, aiohttp, ceiling", closed)
            runs["noop_aiohttp_max"] = await self.measure(
                db, "no-op PTB bot, aiohttp, ceiling", closed, noop=True
            )
            runs["full_httpx_max"] = await self.measure(
                db, "full bot, httpx, ceiling", closed, backend="httpx"
            )
            if self.args.profile:
                await self.measure(
                    db,
                    "full bot, aiohttp, ceiling, under cProfile (figures inflated)",
                    closed,
                    profile=str(Path(self.args.profile).resolve()),
                )
                self.print_profile(Path(self.args.profile))
        self.load_targets(runs)

    def load_targets(self, runs: dict[str, Any]) -> None:
        full = runs["full_aiohttp_max"]["answers_per_s"]
        noop = runs["noop_aiohttp_max"]["answers_per_s"]
        httpx = runs["full_httpx_max"]["answers_per_s"]
        share = full / noop if noop else 0.0
        factor = full / httpx if httpx else 0.0
        p99 = runs["full_aiohttp_rate"]["latency_answer"]["p99_ms"]
        self.targets += [
            Target(
                "full bot answers/s vs the no-op ceiling (aiohttp)",
                share * 100,
                TARGET_NOOP_SHARE * 100,
                "%",
                share >= TARGET_NOOP_SHARE,
                f"{full:.0f} vs {noop:.0f} answers/s",
            ),
            Target(
                "full bot answers/s, aiohttp vs httpx",
                factor,
                TARGET_HTTPX_FACTOR,
                "x",
                factor >= TARGET_HTTPX_FACTOR,
                f"{full:.0f} vs {httpx:.0f} answers/s",
            ),
            Target(
                f"p99 latency at {self.params.rate:.0f} answers/s offered",
                p99,
                TARGET_P99_MS,
                "ms",
                p99 <= TARGET_P99_MS,
                f"achieved {runs['full_aiohttp_rate']['answers_per_s']:.0f} answers/s",
            ),
        ]

    async def section_zalo(self) -> None:
        """Answers per second on the Zalo channel (bench.zalo_answers), beside Telegram's."""
        from bench import zalo_answers

        people = self.params.zalo_people
        self.say(
            f"\n[zalo] {people} contestants on the Zalo channel, each answering a whole attempt "
            "(20 typed letters) as fast as the questions come; Zalo-only process, long polling"
        )
        figures = await zalo_answers.run(people)
        self.results["zalo"] = figures
        telegram = self.results.get("load", {}).get("full_aiohttp_max", {}).get("answers_per_s")
        beside = (
            f"; Telegram, full bot, ceiling: {telegram:.1f} answers/s"
            if telegram is not None
            else " (Telegram's figure: run the load section)"
        )
        self.say(f"  Zalo channel: {figures['answers_per_s']:.1f} answers/s{beside}")
        self.say(
            f"    ({figures['answers']} answers in {figures['seconds']:.1f} s; "
            f"{figures['cpu_ms_per_answer_all_in_one_process']:.2f} ms CPU per answer with the "
            "fake Zalo, the contestants and the bot in ONE process on a SQLite file: a floor, "
            "not comparable one to one with Telegram's two-process figure)"
        )

    async def section_rearm(self) -> None:
        p = self.params
        self.say(f"\n[rearm] {p.rearm:,} attempts in progress when the bot starts")
        async with self.database("rearm") as db:
            count, seconds = await self.seed_open(db, p.rearm, 2_000_000)
            self.say(f"  seeded {count:,} contestants + open attempts in {seconds:.1f} s")
            assert self.fake is not None
            bot, ready = await self.start_bot(db)
            try:
                after_start = proc_memory(bot.pid)
                spec = {"mode": "rate", "rate": p.rate, "warmup": 0.0, "duration": p.rearm_load}
                figures = await self.fake.call(
                    {"cmd": "load", "bot_pid": bot.pid, "db_process": self.db_process, **spec},
                    p.rearm_load + 90,
                )
                after_load = proc_memory(bot.pid)
            finally:
                await bot.close()
        result = {
            "attempts": count,
            "rearmed": ready.get("rearmed"),
            "rearm_s": ready.get("rearm_s"),
            "startup_s": ready.get("startup_s"),
            "rss_after_start_mb": after_start["rss_mb"],
            "peak_rss_after_start_mb": after_start["peak_rss_mb"],
            "peak_rss_mb": after_load["peak_rss_mb"],
            "load_answers_per_s": figures["answers_per_s"],
            "load_p99_ms": figures["latency_answer"]["p99_ms"],
        }
        self.results["rearm"] = result
        self.say(
            f"  re-arm: DeadlineScheduler.rearm() armed {result['rearmed']:,} timers in "
            f"{result['rearm_s']:.2f} s; whole start-up (initialize, migrate, set commands, "
            f"re-arm, first sweep, polling) {result['startup_s']:.2f} s"
        )
        self.say(
            f"  bot memory with {count:,} attempts in progress: RSS {after_start['rss_mb']:.1f} MB "
            f"after start-up; peak RSS {after_load['peak_rss_mb']:.1f} MB after {p.rearm_load:g} s "
            f"at {p.rate:.0f} answers/s offered ({figures['answers_per_s']:.0f} achieved, "
            f"p99 {figures['latency_answer']['p99_ms']:.1f} ms)"
        )
        self.targets += [
            Target(
                f"re-arm {count:,} in-progress attempts",
                result["rearm_s"],
                TARGET_REARM_S,
                "s",
                result["rearm_s"] is not None and result["rearm_s"] < TARGET_REARM_S,
            ),
            Target(
                f"bot peak RSS with {count:,} attempts in progress",
                result["peak_rss_mb"],
                TARGET_RSS_MB,
                "MB",
                result["peak_rss_mb"] < TARGET_RSS_MB,
            ),
        ]

    async def section_notify(self) -> None:
        p = self.params
        self.say(f"\n[notify] {p.notify:,} pending 'attempt_result' notifications in the outbox")
        async with self.database("notify") as db:
            count, seconds = await self.seed_open(db, p.notify, 3_000_000, finished=True)
            self.say(f"  seeded {count:,} closed attempts + outbox rows in {seconds:.1f} s")
            result = await self.worker("notify", db)
        self.results["notify"] = result
        rate = result["sent"] / result["seconds"] if result["seconds"] else 0.0
        self.say(
            f"  DeadlineScheduler.deliver(): {result['sent']:,} notifications in "
            f"{result['seconds']:.2f} s = {rate:.0f} notifications/s (each: retire the card + "
            f"send the result = 2 Bot API calls); "
            f"{result['cpu_s'] / max(result['sent'], 1) * 1000:.2f} CPU s per 1,000"
        )
        self.say(f"  send limit: {result['note']}")
        if result["sent"] != count:
            self.say(f"  !! only {result['sent']:,} of {count:,} notifications were sent")

    async def section_data(self) -> None:
        p = self.params
        self.say(f"\n[ranking/export] {p.big:,} contestants with 2 finished attempts each")
        async with self.database("data") as db:
            rng = random.Random(5)
            began = time.perf_counter()
            bank = await seed_bank(db.engine, self.rules)
            people = await seed_people(db.engine, bank, p.big, 5_000_000, rng)
            attempts = await seed_results(db.engine, people, rng)
            self.say(
                f"  seeded {len(people):,} people + {attempts:,} attempts in "
                f"{time.perf_counter() - began:.1f} s"
            )
            if "ranking" in self.sections:
                ranking = await self.worker("ranking", db)
                self.results["ranking"] = ranking
                self.say(
                    f"  ranking + qualification: {ranking['total_s']:.2f} s for "
                    f"{ranking['ranked']:,} contestants ({ranking['attempts']:,} attempts): "
                    f"load via best_results(1) {ranking['load_s']:.2f} s + rank/qualify "
                    f"{ranking['rank_qualify_s']:.2f} s; through the use case "
                    f"{ranking['use_case_s']:.2f} s; pure in-memory part alone "
                    f"{ranking['pure_best_s']:.2f} s (best of 3); worker peak RSS "
                    f"{ranking['peak_rss_mb']:.0f} MB"
                )
                self.targets.append(
                    Target(
                        f"ranking {ranking['ranked']:,} contestants (load + rank + qualify)",
                        ranking["total_s"],
                        TARGET_RANKING_S,
                        "s",
                        ranking["total_s"] < TARGET_RANKING_S,
                        f"pure part {ranking['pure_best_s']:.2f} s",
                    )
                )
            if "export" in self.sections:
                output = self.folder / "export.xlsx"
                export = await self.worker("export", db, "--output", str(output))
                self.results["export"] = export
                self.say(
                    f"  XLSX export (storage/export.py, the /xuat workbook; no attempt items "
                    f"here, see bench/console_export.py): {export['rows']:,} ranked rows + "
                    f"{attempts:,} attempt rows in {export['seconds']:.2f} s "
                    f"({export['cpu_s']:.2f} CPU s), {export['file_mb']:.1f} MB file, "
                    f"worker peak RSS {export['peak_rss_mb']:.0f} MB"
                )

    def print_profile(self, path: Path) -> None:
        """Self time of the bot's event-loop thread, by function and by package (cProfile's
        cumulative times are meaningless for coroutines, so they are not shown)."""
        import pstats

        raw: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
        entries = [
            (filename, line, name, calls, tottime)
            for (filename, line, name), (_cc, calls, tottime, _cum, _callers) in raw.items()
        ]
        total = sum(e[4] for e in entries) or 1.0
        self.say("    profile of the bot's event-loop thread, top self time:")
        for filename, line, name, calls, tottime in sorted(entries, key=lambda e: -e[4])[:15]:
            self.say(
                f"      {tottime / total * 100:5.1f}%  {_short_path(filename)}:{line} {name} "
                f"({calls:,} calls)"
            )
        packages: dict[str, float] = {}
        for filename, _line, name, _calls, tottime in entries:
            key = _package_of(filename, name)
            packages[key] = packages.get(key, 0.0) + tottime
        self.say("    self time by package:")
        for key, tottime in sorted(packages.items(), key=lambda kv: -kv[1])[:12]:
            self.say(f"      {tottime / total * 100:5.1f}%  {key}")

    # -- summary --------------------------------------------------------------------------

    def print_targets(self) -> None:
        if not self.targets:
            return
        self.say("\nTargets")
        for t in self.targets:
            verdict = "PASS" if t.passed else "FAIL"
            value = "n/a" if t.value is None else f"{t.value:.2f}".rstrip("0").rstrip(".")
            relation = "≥" if t.unit in ("%", "x") else "≤" if t.unit == "ms" else "<"
            detail = f"  ({t.detail})" if t.detail else ""
            self.say(
                f"  {verdict}  {t.name}: {value} {t.unit} (target {relation} {t.limit:g} "
                f"{t.unit}){detail}"
            )
        if self.args.quick:
            self.say("  (--quick: small data and short windows; these verdicts mean little)")


def _now_text() -> str:
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def _is_ours(filename: str) -> bool:
    path = Path(filename)
    try:
        relative = path.resolve().relative_to(PROJECT_ROOT)
    except (ValueError, OSError):
        return False
    return relative.parts[0] in OUR_PACKAGES


def _package_of(filename: str, name: str) -> str:
    """Where a profiled function lives: our package, a third-party package, the standard
    library module, or a built-in."""
    if filename == "~":
        return "built-in: " + name.split(" of ")[0].strip("<>")
    if _is_ours(filename):
        return "ours: " + Path(filename).resolve().relative_to(PROJECT_ROOT).parts[0]
    marker = "site-packages/"
    if marker in filename:
        return filename.split(marker, 1)[1].split("/", 1)[0]
    return "stdlib: " + Path(filename).name


def _short_path(filename: str) -> str:
    if _is_ours(filename):
        return str(Path(filename).resolve().relative_to(PROJECT_ROOT))
    marker = "site-packages/"
    if marker in filename:
        return filename.split(marker, 1)[1]
    return filename


# ============================================================================================
# Command line
# ============================================================================================


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="contest-bot bench",
        description="Measure the bot: throughput, latency, CPU and memory against a local fake "
        "Bot API server, plus re-arming, notifications, ranking and the XLSX export.",
    )
    p.add_argument("--quick", action="store_true", help="small data, short windows (smoke test)")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SECTION",
        help=f"run only these sections (repeatable or comma-separated): {', '.join(SECTIONS)}",
    )
    p.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    p.add_argument(
        "--database-url",
        help="PostgreSQL URL to run on (each section uses a schema of its own, dropped after); "
        "default: fresh SQLite files",
    )
    p.add_argument("--contestants", type=int, help="contestants for the load test (2,000)")
    p.add_argument("--rate", type=float, help="offered answers/s for the latency run (300)")
    p.add_argument("--duration", type=float, help="seconds measured per load run (20)")
    p.add_argument("--warmup", type=float, help="seconds of load before each window (3)")
    p.add_argument("--concurrency", type=int, help="presses in flight in ceiling runs (64)")
    p.add_argument("--rearm", type=int, help="attempts in progress at start-up (10,000)")
    p.add_argument("--notify", type=int, help="pending notifications to deliver (10,000)")
    p.add_argument("--big", type=int, help="contestants to rank and export (100,000)")
    p.add_argument("--profile", metavar="FILE", help="extra ceiling run under cProfile to FILE")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    # Roles of the child processes (not for people).
    p.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--serve-bot", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--noop", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--token", default=TOKEN, help=argparse.SUPPRESS)
    p.add_argument("--pg-schema", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    return p


def params_for(args: argparse.Namespace) -> Params:
    if args.quick:
        base = Params(
            contestants=60,
            rate=100,
            duration=1.0,
            warmup=0.3,
            max_duration=1.0,
            concurrency=16,
            rearm=300,
            rearm_load=0.5,
            notify=100,
            big=2_000,
            zalo_people=6,
        )
    else:
        base = Params(
            contestants=2_000,
            rate=300,
            duration=20.0,
            warmup=3.0,
            max_duration=20.0,
            concurrency=64,
            rearm=10_000,
            rearm_load=5.0,
            notify=10_000,
            big=100_000,
        )
    if args.contestants:
        base.contestants = args.contestants
    if args.rate:
        base.rate = args.rate
    if args.duration:
        base.duration = base.max_duration = args.duration
    if args.warmup is not None:
        base.warmup = args.warmup
    if args.concurrency:
        base.concurrency = args.concurrency
    if args.rearm:
        base.rearm = args.rearm
    if args.notify:
        base.notify = args.notify
    if args.big:
        base.big = args.big
    return base


def sections_for(only: Sequence[str]) -> list[str]:
    wanted = [s.strip() for item in only for s in item.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s): {', '.join(unknown)}; choose from {SECTIONS}")
    return [s for s in SECTIONS if s in wanted] if wanted else list(SECTIONS)


def main(argv: list[str] | None = None) -> int:
    """``contest-bot bench [options]``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # ``contest-bot bench -- --quick``: the CLI passes the "--" on
        argv = argv[1:]
    args = parser().parse_args(argv)
    if args.serve_fake:
        return asyncio.run(_serve_fake(args))
    if args.serve_bot:
        return asyncio.run(_serve_bot(args))
    if args.worker:
        return asyncio.run(_serve_worker(args))
    bench = Bench(args, params_for(args), sections_for(args.only))
    return asyncio.run(bench.run())


def _stdout_utf8(stream: IO[str]) -> None:
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(encoding="utf-8")


if __name__ == "__main__":
    _stdout_utf8(sys.stdout)
    sys.exit(main(sys.argv[1:]))
