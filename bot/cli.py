"""``contest-bot``: run the bot, import the question bank and the units, migrate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from telegram.error import TelegramError

from bot.config import ConfigError, load_rules
from bot.logs import configure_logging, redact, register_settings_secrets
from bot.settings import Settings
from contest.errors import ContestError, ImportRejected
from contest.importing import validate_questions, validate_units
from contest.ui import texts
from storage.schema import DatabaseReadOnly, DatabaseUnavailable

log = logging.getLogger("contest_bot")

EXIT_USAGE = 2
EXIT_REJECTED = 1
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

RAW_PAYLOADS_WARNING = (
    "CẢNH BÁO: đã bật --log-raw-payloads. Nhật ký sẽ ghi nguyên văn các cập nhật và yêu cầu "
    "trao đổi với Telegram, tức là có DỮ LIỆU CÁ NHÂN của người dự thi (họ tên, ngày sinh, số "
    "điện thoại). Chỉ bật trong thời gian ngắn để tìm lỗi, không chia sẻ nhật ký này, và xóa nó "
    "khi đã xong. Token của bot và khóa bí mật webhook vẫn được che."
)


def database_unavailable_message(exc: DatabaseUnavailable) -> str:
    """What to tell the operator (in Vietnamese): the kind of failure, what to check."""
    # Only the kind of failure: the driver's message can quote the URL's password.
    if isinstance(exc, DatabaseReadOnly):
        where = f" (tệp {exc.path})" if exc.path else ""
        return (
            f"Không ghi được vào cơ sở dữ liệu{where}: cơ sở dữ liệu đang ở chế độ chỉ "
            "đọc. Hãy kiểm tra: người dùng chạy bot có quyền ghi trên tệp cơ sở dữ "
            "liệu và trên thư mục chứa nó (SQLite cần tạo thêm các tệp -wal và -shm bên "
            "cạnh); đường dẫn trong CONTEST_DATABASE_URL có trỏ đúng tệp cần dùng không; ổ "
            "đĩa có bị gắn ở chế độ chỉ đọc hoặc đã đầy không. Với PostgreSQL: máy chủ không "
            "phải bản sao chỉ đọc và tài khoản có quyền ghi."
        )
    return (
        f"Không kết nối hoặc không mở được cơ sở dữ liệu ({exc}). Hãy kiểm tra "
        "CONTEST_DATABASE_URL (máy chủ, cổng, tên cơ sở dữ liệu, tài khoản và mật khẩu; với "
        "SQLite: đường dẫn tệp và thư mục chứa nó có tồn tại không), máy chủ cơ sở dữ liệu có "
        "đang chạy và nhận kết nối từ máy này không, và quyền truy cập của tài khoản hoặc của "
        "người dùng chạy bot trên tệp."
    )


def fail(message: str, code: int = EXIT_USAGE) -> int:
    # A library's message (a Bot API error, say) may quote a URL: secrets are masked here
    # as in the log. Personal data is left alone: a rejected file's report quotes its cells.
    print(redact(message, personal_data=False), file=sys.stderr)
    return code


def load_settings() -> Settings:
    settings = Settings()
    register_settings_secrets(settings)  # masked in every log line from now on
    return settings


CHANNELS = ("telegram", "zalo")


def parse_channels(value: str) -> frozenset[str]:
    """``--channel telegram``, ``zalo`` or ``telegram,zalo``."""
    names = frozenset(part.strip().lower() for part in value.split(",") if part.strip())
    if not names or not names <= set(CHANNELS):
        raise argparse.ArgumentTypeError(
            f"kênh không hợp lệ: “{value}” (chọn telegram, zalo hoặc telegram,zalo)"
        )
    return names


def cmd_run(args: argparse.Namespace) -> int:
    from bot.app import MissingToken, build_application
    from bot.zalo import ZaloConfigError

    settings = load_settings()
    try:
        rules = load_rules(settings.config_path())
    except ConfigError as exc:
        return fail(f"Lỗi cấu hình cuộc thi: {exc}")
    channels: frozenset[str] = args.channel
    if "telegram" not in channels:
        return _run_zalo(settings, rules, webhook=args.webhook)
    try:
        app = build_application(settings, rules, polling=not args.webhook, zalo="zalo" in channels)
    except ZaloConfigError as exc:
        return fail(str(exc))
    except MissingToken:
        return fail(
            "Chưa có token của bot: hãy đặt biến môi trường CONTEST_BOT_TOKEN "
            "(token do @BotFather cấp)."
        )
    try:
        if args.webhook:
            from bot.webhook import run_webhook

            return int(run_webhook(app, settings))
        log.info("bot starting (long polling, config %s)", settings.config_path())
        asyncio.run(_poll_until_signalled(app, settings.poll_timeout))
    except TelegramError as exc:
        return fail(
            f"Không kết nối được với Telegram Bot API ({settings.bot_api_url}): {exc}. "
            "Hãy kiểm tra CONTEST_BOT_TOKEN, CONTEST_BOT_API_URL và kết nối mạng.",
            1,
        )
    return 0


def _run_zalo(settings: Settings, rules: Any, *, webhook: bool) -> int:
    """``--channel zalo``: Zalo alone, with its own timers (deadlines, outbox, campaign)."""
    from bot.zalo import ZaloConfigError, ZaloProcess
    from zalo.api import ZaloError, ZaloNetworkError

    try:
        process = ZaloProcess(settings, rules, polling=not webhook)
    except ZaloConfigError as exc:
        return fail(str(exc))

    async def serve() -> None:
        await process.start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await stopping.wait()
        finally:
            log.info("bot stopping")
            await process.stop()

    try:
        asyncio.run(serve())
    except (ZaloError, ZaloNetworkError) as exc:
        return fail(
            f"Không kết nối được với Zalo Bot API ({settings.zalo_api_url}): {exc}. Hãy kiểm "
            "tra CONTEST_ZALO_TOKEN, CONTEST_ZALO_API_URL và kết nối mạng.",
            1,
        )
    except OSError as exc:
        return fail(
            f"Không mở được cổng {settings.webhook_listen}:{settings.webhook_port} cho webhook "
            f"Zalo (CONTEST_WEBHOOK_LISTEN, CONTEST_WEBHOOK_PORT): {exc.strerror or exc}",
            1,
        )
    return 0


async def _poll_until_signalled(app: Any, poll_timeout: int) -> None:
    """Long polling until SIGINT or SIGTERM; everything opened is closed on the way out."""
    from bot.app import close_requests, start, stop

    try:
        await start(app, poll_timeout=poll_timeout)
    except BaseException:
        await close_requests(app)
        raise
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
    finally:
        log.info("bot stopping")
        await stop(app)


async def _import(kind: str, path: Path, settings: Settings, *, replace: bool = False) -> int:
    from contest.clock import SystemClock
    from contest.services import ContestService
    from storage.db import create_engine
    from storage.files import read_table
    from storage.schema import migrate
    from storage.uow import SqlUnitOfWorkFactory

    try:
        header, rows = read_table(path)
        if kind == "questions":
            question_rows = validate_questions(header, rows)
        else:
            unit_rows = validate_units(header, rows)
    except ImportRejected as exc:
        return fail(texts.import_rejected(exc.problems), EXIT_REJECTED)
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        rules = load_rules(settings.config_path())
        service = ContestService(SqlUnitOfWorkFactory(engine), SystemClock(), rules)
        if kind == "questions":
            summary = await service.console.import_questions(question_rows, replace=replace)
            what = "câu hỏi"
        else:
            summary = await service.console.import_units(unit_rows)
            what = "đơn vị"
    except ContestError as exc:
        return fail(texts.error(exc.code, **exc.params), EXIT_REJECTED)
    finally:
        await engine.dispose()
    withdrawn = summary.withdrawn if replace else None
    print(texts.import_done(what, summary.created, summary.updated, withdrawn))
    return 0


def cmd_import_questions(args: argparse.Namespace) -> int:
    return _run_import("questions", args.file, replace=args.replace)


def cmd_import_units(args: argparse.Namespace) -> int:
    return _run_import("units", args.file)


def _run_import(kind: str, path: Path, *, replace: bool = False) -> int:
    settings = load_settings()
    try:
        return asyncio.run(_import(kind, path, settings, replace=replace))
    except ConfigError as exc:
        return fail(f"Lỗi cấu hình cuộc thi: {exc}")


def cmd_migrate(args: argparse.Namespace) -> int:
    from storage.db import create_engine
    from storage.schema import migrate

    async def go() -> None:
        engine = create_engine(load_settings().database_url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(go())
    print("Cơ sở dữ liệu đã được cập nhật.")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """The organisers' workbook (what /xuat sends) written to a file."""
    from datetime import UTC, datetime

    from contest.ports import ExportRequest
    from storage.db import create_engine
    from storage.export import write_workbook
    from storage.schema import migrate

    output: Path = args.file
    if output.suffix.lower() != ".xlsx":
        return fail(f"Tệp “{output}” phải có đuôi .xlsx.")
    settings = load_settings()
    try:
        rules = load_rules(settings.config_path())
    except ConfigError as exc:
        return fail(f"Lỗi cấu hình cuộc thi: {exc}")

    async def go() -> int:
        engine = create_engine(settings.database_url)
        try:
            await migrate(engine)
            request = ExportRequest(args.round, rules.quota, datetime.now(UTC))
            written = await write_workbook(engine, request, output)
        finally:
            await engine.dispose()

        def num(value: int) -> str:
            return f"{value:,}".replace(",", ".")

        print(
            f"Đã ghi {output}: {num(written.contestants)} thí sinh ({num(written.ranked)} "
            f"được xếp hạng), {num(written.attempts)} lần thi, phân tích "
            f"{num(written.questions)} câu hỏi. Tệp có số điện thoại của thí sinh: chỉ dùng "
            "trong Ban Tổ chức."
        )
        return 0

    try:
        return asyncio.run(go())
    except OSError as exc:
        return fail(f"Không ghi được tệp {output}: {exc.strerror or exc}.", 1)


def cmd_qr(args: argparse.Namespace) -> int:
    """The deep link into the exam (``https://t.me/<bot>?start=thi``) as a QR code, for
    posters and the district portal; the bot's username from getMe unless given."""
    import re

    import segno

    payload = args.payload
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", payload):
        return fail(
            f"Không dùng được “{payload}” trong đường dẫn: chỉ gồm chữ cái không dấu, chữ số, "
            "dấu “_” và “-”, tối đa 64 ký tự (ví dụ: thi, dangky)."
        )
    username = (args.username or "").strip().lstrip("@")
    if not username:
        settings = load_settings()
        token = settings.bot_token.get_secret_value().strip() if settings.bot_token else ""
        if not token:
            return fail(
                "Chưa có token của bot để hỏi tên bot: hãy đặt biến môi trường "
                "CONTEST_BOT_TOKEN, hoặc ghi tên bot bằng --username (ví dụ: --username "
                "cchc_dongda_bot)."
            )

        async def ask() -> str:
            from telegram import Bot

            async with Bot(token, base_url=settings.bot_api_url) as bot:
                return str(bot.username)

        try:
            username = asyncio.run(ask())
        except TelegramError as exc:
            return fail(
                f"Không hỏi được tên bot từ Telegram Bot API ({settings.bot_api_url}): {exc}. "
                "Hãy kiểm tra CONTEST_BOT_TOKEN, CONTEST_BOT_API_URL và kết nối mạng, hoặc ghi "
                "tên bot bằng --username.",
                1,
            )
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{3,31}", username):
        return fail(f"Tên bot “{username}” không hợp lệ (ví dụ đúng: cchc_dongda_bot).")
    link = f"https://t.me/{username}?start={payload}"
    output: Path = args.output or Path(f"qr-{payload}.png")
    if output.suffix.lower() not in (".png", ".svg"):
        return fail(f"Tệp “{output}” phải có đuôi .png (ảnh) hoặc .svg (để in khổ lớn).")
    try:
        segno.make(link, error="m", micro=False).save(str(output), scale=args.scale, border=4)
    except OSError as exc:
        return fail(f"Không ghi được tệp {output}: {exc.strerror or exc}.", 1)
    print(f"Đường dẫn vào thi: {link}")
    print(f"Đã ghi mã QR của đường dẫn vào tệp {output}.")
    return 0


ADMIN_HINT = (
    "Chọn bằng số thứ tự, Enter để kết thúc. Các lệnh giống hệt trong khung chat của Ban Tổ "
    "chức; mỗi thao tác được ghi vào nhật ký quản trị với tên “cli:{user}”."
)


def cmd_admin(args: argparse.Namespace) -> int:
    """An organiser's chat command from the server's command line: the same screens, rules
    and audit log as in the chat (``contest-bot admin thongke``, ``admin khoa 09… lý do``).
    A reply's choices are listed by number and followed with ``--choose`` (in order), or
    asked for when the terminal is interactive; a document the reply carries is written to
    the working folder (or ``--output``)."""
    import getpass

    import contest.ui.console  # noqa: F401  (registers the routes)
    from contest.clock import SystemClock
    from contest.model import Account, Channel
    from contest.services import ContestService
    from contest.ui.markup import plain
    from contest.ui.reply import Reply
    from contest.ui.router import CONSOLE, Ui
    from storage.db import create_engine
    from storage.schema import migrate
    from storage.uow import SqlUnitOfWorkFactory

    name = args.name.lstrip("/").lower()
    if name not in CONSOLE.commands:
        known = ", ".join(sorted(CONSOLE.commands))
        return fail(f"Không có lệnh quản trị “{args.name}”. Các lệnh: {known}.")
    settings = load_settings()
    try:
        rules = load_rules(settings.config_path())
    except ConfigError as exc:
        return fail(f"Lỗi cấu hình cuộc thi: {exc}")
    account = Account(Channel.CLI, getpass.getuser() or "admin")
    choices = list(args.choose or [])
    interactive = not choices and sys.stdin.isatty()

    def show(reply: Reply) -> list[str]:
        if reply.alert and plain(reply.alert) not in plain(reply.text):
            print(plain(reply.alert))
        if reply.text:
            print(plain(reply.text))
        if reply.document is not None:
            target = args.output or Path(reply.document.filename)
            target.write_bytes(reply.document.data)
            print(f"Đã ghi tệp {target} ({len(reply.document.data):,} byte).")
        actions: list[str] = []
        for choice in reply.menu.choices() if reply.menu else ():
            actions.append(choice.action)
            print(f"  {len(actions)}. {plain(choice.label)}")
        return actions

    async def go() -> int:
        engine = create_engine(settings.database_url)
        try:
            await migrate(engine)
            service = ContestService(
                SqlUnitOfWorkFactory(engine),
                SystemClock(),
                rules,
                admins=frozenset({account}),
            )
            ui = Ui(service)
            actor = await ui.actor(account, f"cli:{account.user_id}")
            reply: Reply | None = await ui.command(actor, name, tuple(args.args))
            while reply is not None:
                if reply.later is not None:
                    reply = await reply.later()
                    continue
                actions = show(reply)
                if reply.expect is not None:
                    typed = choices.pop(0) if choices else (input("> ") if interactive else "")
                    if not typed:
                        return 0
                    reply = await ui.text(account, actor.name, typed)
                    continue
                if not actions:
                    return 0
                if interactive and not choices:
                    print(ADMIN_HINT.format(user=account.user_id))
                    picked = input("> ").strip()
                elif choices:
                    picked = choices.pop(0)
                else:
                    return 0
                if not picked:
                    return 0
                if not picked.isdigit() or not 1 <= int(picked) <= len(actions):
                    return fail(
                        f"“{picked}” không phải số thứ tự của một lựa chọn (1–{len(actions)})."
                    )
                reply = await ui.action(actor, actions[int(picked) - 1])
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(go())


TOOLS_GROUP = "contest_bot.tools"
# The project's tools (the benchmark, the rehearsal sandbox) are packages of their own that
# the product does not import: each registers its ``main(argv) -> int`` under this group.
TOOL_HELP = {
    "bench": "đo hiệu năng (xem bench --help)",
    "sandbox": "diễn tập không cần Telegram: bot trên Bot API giả lập, trò chuyện qua trang "
    "web http://127.0.0.1:8080 (xem sandbox --help)",
}
# The log level each tool runs at (the sandbox shows the bot's warnings).
TOOL_LOG_LEVEL = {"bench": "WARNING", "sandbox": "WARNING"}


def tool(name: str) -> Any:
    """The ``main`` of an installed tool, found by its entry point."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=TOOLS_GROUP, name=name):
        return entry.load()
    raise SystemExit(f"Không tìm thấy công cụ “{name}”: hãy cài đặt lại dự án (pip install -e .).")


def cmd_tool(args: argparse.Namespace) -> int:
    return int(tool(args.command)(args.tool_args))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="contest-bot", description="Bot Cuộc thi tìm hiểu công tác cải cách hành chính"
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=LOG_LEVELS,
        help="mức ghi nhật ký của bot (thư viện vẫn ở mức INFO trở lên)",
    )
    p.add_argument(
        "--log-raw-payloads",
        action="store_true",
        help="ghi cả nội dung thô các cập nhật và yêu cầu Telegram (CÓ DỮ LIỆU CÁ NHÂN: "
        "chỉ dùng khi tìm lỗi)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="chạy bot (long polling, hoặc --webhook)")
    run.add_argument(
        "--webhook", action="store_true", help="nhận cập nhật qua webhook thay cho long polling"
    )
    run.add_argument(
        "--channel",
        type=parse_channels,
        default=frozenset({"telegram"}),
        help="kênh phục vụ: telegram (mặc định), zalo, hoặc telegram,zalo (cả hai trong một "
        "tiến trình)",
    )
    run.set_defaults(func=cmd_run)
    iq = sub.add_parser("import-questions", help="nhập ngân hàng câu hỏi (CSV hoặc XLSX)")
    iq.add_argument("file", type=Path)
    iq.add_argument(
        "--replace",
        action="store_true",
        help="tệp là toàn bộ ngân hàng: câu hỏi không có trong tệp được ngừng sử dụng",
    )
    iq.set_defaults(func=cmd_import_questions)
    iu = sub.add_parser("import-units", help="nhập danh sách đơn vị (CSV hoặc XLSX)")
    iu.add_argument("file", type=Path)
    iu.set_defaults(func=cmd_import_units)
    mg = sub.add_parser("migrate", help="cập nhật cấu trúc cơ sở dữ liệu")
    mg.set_defaults(func=cmd_migrate)
    ex = sub.add_parser(
        "export", help="xuất dữ liệu cuộc thi ra tệp Excel (như lệnh /xuat của Ban Tổ chức)"
    )
    ex.add_argument("file", type=Path, help="tệp .xlsx cần ghi")
    ex.add_argument("--round", type=int, default=1, choices=(1, 2), help="vòng thi (mặc định: 1)")
    ex.set_defaults(func=cmd_export)
    qr = sub.add_parser(
        "qr", help="tạo mã QR của đường dẫn vào thi (in trên áp phích, cổng thông tin)"
    )
    qr.add_argument(
        "--output", type=Path, help="tệp ảnh cần ghi, .png hoặc .svg (mặc định: qr-<mã>.png)"
    )
    qr.add_argument(
        "--payload", default="thi", help="mã sau ?start= (mặc định: thi, vào thẳng bài thi)"
    )
    qr.add_argument(
        "--username", help="tên bot (không cần hỏi Telegram Bot API), ví dụ cchc_dongda_bot"
    )
    qr.add_argument("--scale", type=int, default=10, help="số điểm ảnh mỗi ô (mặc định: 10)")
    qr.set_defaults(func=cmd_qr)
    ad = sub.add_parser(
        "admin",
        help="chạy một lệnh quản trị như trong khung chat (ví dụ: admin thongke, admin bxh)",
    )
    ad.add_argument("name", help="tên lệnh, không có “/” (thongke, bxh, khoa, suacau…)")
    ad.add_argument("args", nargs="*", help="tham số của lệnh")
    ad.add_argument(
        "--choose",
        action="append",
        metavar="SỐ",
        help="chọn lựa chọn thứ SỐ của câu trả lời (hoặc nội dung cần gõ); lặp lại cho "
        "các bước sau",
    )
    ad.add_argument("--output", type=Path, help="nơi ghi tệp câu trả lời gửi kèm (nếu có)")
    ad.set_defaults(func=cmd_admin)
    for name, help_text in TOOL_HELP.items():
        tool_parser = sub.add_parser(name, help=help_text, add_help=False)
        tool_parser.add_argument("tool_args", nargs=argparse.REMAINDER)
        tool_parser.set_defaults(func=cmd_tool)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PTB_TIMEDELTA", "1")  # durations as timedeltas (PTB 22)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in TOOL_HELP:
        # Everything after the tool's name belongs to its own parser (--quick, --port …).
        configure_logging(TOOL_LOG_LEVEL.get(argv[0], "WARNING"))
        return int(tool(argv[0])(argv[1:]))
    args: Any = parser().parse_args(argv)
    configure_logging(args.log_level, raw_payloads=args.log_raw_payloads)
    if args.log_raw_payloads:
        log.warning(RAW_PAYLOADS_WARNING)
    try:
        return int(args.func(args))
    except ValidationError as exc:
        return fail(
            f"Lỗi biến môi trường: {exc.error_count()} giá trị không hợp lệ: "
            + ", ".join("CONTEST_" + str(e["loc"][0]).upper() for e in exc.errors())
        )
    except DatabaseUnavailable as exc:
        return fail(database_unavailable_message(exc), EXIT_REJECTED)


if __name__ == "__main__":
    sys.exit(main())
