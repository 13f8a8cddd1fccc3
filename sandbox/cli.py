"""``contest-bot sandbox [--port 8080] [--database-url URL] [--config FILE]``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path

from sandbox.schedule import write_contest_file

BANNER = """\
Hộp thử cuộc thi CCHC (diễn tập, không cần Telegram hay Zalo) đang chạy.
  Mở trang: {url}
  Kênh: Telegram và Zalo (máy chủ giả lập trên máy này)
  Cơ sở dữ liệu: {database}
  Tệp cấu hình cuộc thi: {config}
  Vòng 1 mở từ {opens} đến {closes}.
Nhấn Ctrl+C để dừng."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="contest-bot sandbox",
        description="Diễn tập cuộc thi không cần Telegram hay Zalo: bot thật chạy trên máy chủ "
        "Bot API giả lập của Telegram và của Zalo, trò chuyện qua trang web.",
    )
    p.add_argument("--port", type=int, default=8080, help="cổng của trang web (mặc định: 8080)")
    p.add_argument(
        "--host", default="127.0.0.1", help="địa chỉ của trang web (mặc định: 127.0.0.1)"
    )
    p.add_argument(
        "--database-url",
        help="cơ sở dữ liệu giữ lại sau khi dừng (mặc định: tệp SQLite trong thư mục tạm, "
        "xóa khi dừng)",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="tệp cấu hình cuộc thi (mặc định: tạo tệp mới với vòng 1 đang mở)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if not 0 <= args.port <= 65535:
        print("Cổng phải là số từ 0 đến 65535.", file=sys.stderr)
        return 2
    from bot.config import ConfigError

    try:
        return asyncio.run(_run(args))
    except ConfigError as exc:
        print(f"Lỗi cấu hình cuộc thi: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"Không mở được trang ở {args.host}:{args.port} ({exc.strerror or exc}). "
            "Cổng này có thể đang được dùng: chọn cổng khác bằng --port.",
            file=sys.stderr,
        )
        return 1


async def _run(args: argparse.Namespace) -> int:
    from contest.clock import OffsetClock
    from sandbox.server import Sandbox

    clock = OffsetClock()
    with tempfile.TemporaryDirectory(prefix="contest-sandbox-") as folder:
        workdir = Path(folder)
        database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'contest.db'}"
        config = args.config or write_contest_file(workdir, clock.now())
        sandbox = Sandbox(
            database_url=database_url, config=config, host=args.host, port=args.port, clock=clock
        )
        await sandbox.start()
        schedule = sandbox.schedule_state()
        print(
            BANNER.format(
                url=sandbox.url,
                database=(
                    "giữ lại sau khi dừng (--database-url)"
                    if args.database_url
                    else "tệp tạm, xóa khi dừng"
                ),
                config=config,
                opens=schedule["round1_opens"],
                closes=schedule["round1_closes"],
            ),
            flush=True,
        )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await stopping.wait()
        finally:
            print("Đang dừng hộp thử…", flush=True)
            await sandbox.stop()
    return 0
