"""The ``contest-bot`` command line, run as a subprocess against a SQLite file."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import socket
import sqlite3
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import text

from contest.importing import validate_questions
from fakes.telegram import FakeBotApi
from storage.db import create_engine
from storage.files import read_table
from storage.schema import DatabaseReadOnly, migrate
from storage.uow import SqlUnitOfWorkFactory
from tests.conftest import PG_ENV

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "storage" / "samples"
EXAMPLE_TOML = ROOT / "contest.example.toml"
CONSOLE_SCRIPT = Path(sys.executable).with_name("contest-bot")
COMMAND = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "bot.cli"]

QUESTION_HEADER = ["topic", "question", "a", "b", "c", "answer"]
TOKEN = "123456:TEST-TOKEN"

Result = subprocess.CompletedProcess[str]


class Cli:
    """Runs ``contest-bot`` in an empty working folder with a clean CONTEST_* environment."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path
        self.db = tmp_path / "contest.db"
        self.command = COMMAND
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEST_")}
        self.env.update(
            CONTEST_DATABASE_URL=f"sqlite:///{self.db}",
            CONTEST_CONFIG=str(EXAMPLE_TOML),
            CONTEST_BOT_API_URL=f"http://127.0.0.1:{free_port()}/bot",  # nothing listens
            PYTHONIOENCODING="utf-8",
        )

    def __call__(self, *args: str, timeout: float = 30, **env: str) -> Result:
        return subprocess.run(
            [*self.command, *args],
            cwd=self.cwd,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            check=False,
        )

    def many(self, *calls: tuple[list[str], dict[str, str]]) -> list[Result]:
        """Run several independent commands at once (they are mostly start-up time)."""
        with ThreadPoolExecutor(len(calls)) as pool:
            futures = [pool.submit(self, *args, **env) for args, env in calls]
            return [f.result() for f in futures]

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.db)) as connection:
            return connection.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()

    def count(self, table: str) -> int:
        return len(self.rows(table))


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    assert not (tmp_path / ".env").exists()
    return Cli(tmp_path)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port that accepts connections but never answers: proof of any network use."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def no_connection(sock: socket.socket) -> bool:
    try:
        connection, _ = sock.accept()
    except BlockingIOError:
        return True
    connection.close()
    return False


def write_csv(path: Path, rows: list[list[str]], delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return path


def write_xlsx(path: Path, rows: list[list[Any]]) -> Path:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    workbook.close()
    return path


def sample_questions() -> list[list[str]]:
    """The sample bank parsed by the standard csv module (RFC 4180 quoting)."""
    text = (SAMPLES / "questions.csv").read_text(encoding="utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


# ------------------------------------------------------------------ imports


def test_import_samples_then_again_updates(cli: Cli) -> None:
    done = cli("import-questions", str(SAMPLES / "questions.csv"))
    assert done.returncode == 0, done.stderr
    assert "Đã nhập câu hỏi: 86 mục mới, 0 mục cập nhật." in done.stdout
    assert cli.count("questions") == 86

    units = cli("import-units", str(SAMPLES / "units.csv"))
    assert units.returncode == 0, units.stderr
    lines = [line for line in (SAMPLES / "units.csv").read_text("utf-8").splitlines() if line]
    assert lines[0] == "code,name,kind,staff_count"
    expected_units = len(lines) - 1
    assert f"Đã nhập đơn vị: {expected_units} mục mới, 0 mục cập nhật." in units.stdout
    assert cli.count("units") == expected_units

    again = cli("import-questions", str(SAMPLES / "questions.csv"))
    assert again.returncode == 0, again.stderr
    assert "Đã nhập câu hỏi: 0 mục mới, 86 mục cập nhật." in again.stdout
    assert cli.count("questions") == 86


async def seed_questions(db: Path) -> None:
    """The sample bank, imported in-process (quicker than one more subprocess)."""
    engine = create_engine(f"sqlite:///{db}")
    try:
        await migrate(engine)
        header, rows = read_table(SAMPLES / "questions.csv")
        async with SqlUnitOfWorkFactory(engine)() as uow:
            await uow.questions.upsert(validate_questions(header, rows))
            await uow.commit()
    finally:
        await engine.dispose()


async def test_malformed_questions_file_is_rejected_and_nothing_is_written(cli: Cli) -> None:
    await seed_questions(cli.db)
    before = cli.rows("questions")
    assert len(before) == 86

    bad = write_csv(
        cli.cwd / "cau-hoi-loi.csv",
        [
            QUESTION_HEADER,
            ["Luật", "Câu hỏi mới hợp lệ?", "Một", "Hai", "Ba", "a"],  # fine on its own
            ["Luật", "Câu hỏi có đáp án sai?", "Một", "Hai", "Ba", "d"],
            ["Luật", "Câu hỏi thiếu phương án?", "Một", "", "Ba", "b"],
            ["Luật", "CÂU HỎI  mới hợp lệ?", "Bốn", "Năm", "Sáu", "c"],  # duplicate of row 2
            ["", "Câu hỏi không có chủ đề?", "Một", "Hai", "Ba", "E"],
        ],
    )
    result = cli("import-questions", str(bad))
    assert result.returncode == 1
    output = result.stderr
    assert "Tệp bị từ chối, không có dữ liệu nào được ghi (5 lỗi):" in output
    for line in [
        "- Dòng 3, cột “answer”: đáp án phải là a, b hoặc c (giá trị: “d”)",
        "- Dòng 4, cột “b”: ô trống",
        "- Dòng 5, cột “question”: câu hỏi trùng với dòng 2",
        "- Dòng 6, cột “topic”: ô trống",
        "- Dòng 6, cột “answer”: đáp án phải là a, b hoặc c (giá trị: “E”)",
    ]:
        assert line in output
    assert "Traceback" not in output
    assert cli.rows("questions") == before


def test_unusable_files_are_explained(cli: Cli) -> None:
    missing = write_csv(cli.cwd / "units.csv", [["code", "name", "kind"], ["P1", "Một", "phuong"]])
    latin = cli.cwd / "q.csv"
    latin.write_bytes("topic,question,a,b,c,answer\nT,Qué?,x,y,z,a\n".encode("latin-1"))
    results = cli.many((["import-units", str(missing)], {}), (["import-questions", str(latin)], {}))
    expected = ["- Dòng 1, cột “staff_count”: thiếu cột", "- Tệp: tệp CSV phải dùng bảng mã UTF-8"]
    for result, line in zip(results, expected, strict=True):
        assert result.returncode == 1, result.stderr
        assert "Tệp bị từ chối, không có dữ liệu nào được ghi (1 lỗi):" in result.stderr
        assert line in result.stderr
    assert not cli.db.exists()  # rejected before the database is opened


def test_xlsx_imports(cli: Cli) -> None:
    units = write_xlsx(
        cli.cwd / "don-vi.xlsx",
        [
            ["Code", "Name", "Kind", "Staff_Count"],
            ["P-CATLINH", "UBND phường Cát Linh", "phuong", 25],
            ["PB-NOIVU", "Phòng Nội vụ", "PHONG_BAN", 12.0],
        ],
    )
    questions = write_xlsx(cli.cwd / "cau-hoi.xlsx", [list(r) for r in sample_questions()])
    # Both at once on a fresh file: the two migrations and imports must not collide.
    result, imported = cli.many(
        (["import-units", str(units)], {}), (["import-questions", str(questions)], {})
    )
    assert result.returncode == 0, result.stderr
    assert "Đã nhập đơn vị: 2 mục mới, 0 mục cập nhật." in result.stdout
    assert imported.returncode == 0, imported.stderr
    assert "Đã nhập câu hỏi: 86 mục mới, 0 mục cập nhật." in imported.stdout
    stored = {(r[1], r[2], r[3], r[4]) for r in cli.rows("units")}
    assert stored == {
        ("P-CATLINH", "UBND phường Cát Linh", "phuong", 25),
        ("PB-NOIVU", "Phòng Nội vụ", "phong_ban", 12),
    }
    with closing(sqlite3.connect(cli.db)) as connection:
        texts = [r[0] for r in connection.execute("SELECT text FROM questions")]
    assert len(texts) == 86
    assert any(t.startswith('"Đề án 30" về đơn giản hóa') for t in texts)


def test_same_question_in_two_unicode_forms_is_reported_as_duplicate(cli: Cli) -> None:
    text = "Cải cách hành chính nhằm mục tiêu gì?"
    bad = write_csv(
        cli.cwd / "q.csv",
        [
            QUESTION_HEADER,
            ["Luật", unicodedata.normalize("NFC", text), "Một", "Hai", "Ba", "a"],
            ["Luật", unicodedata.normalize("NFD", text), "Một", "Hai", "Ba", "b"],
        ],
    )
    result = cli("import-questions", str(bad))
    assert "Traceback" not in result.stderr
    assert result.returncode == 1
    assert "- Dòng 3, cột “question”: câu hỏi trùng với dòng 2" in result.stderr


# ------------------------------------------------------------------ migrate and run


def test_migrate_creates_the_schema(cli: Cli) -> None:
    result = cli("migrate")
    assert result.returncode == 0, result.stderr
    assert "Cơ sở dữ liệu đã được cập nhật." in result.stdout
    with closing(sqlite3.connect(cli.db)) as connection:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
        version = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    assert {"questions", "units", "persons", "attempts", "attempt_items", "outbox"} <= tables
    assert len(version) == 1


def contest_toml(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = EXAMPLE_TOML.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


MINUTES = "minutes = 20          # time limit per attempt"


def test_run_refuses_to_start_before_any_network_use(cli: Cli, listener: socket.socket) -> None:
    """No token, or a bad contest file: ``run`` stops at once, naming what to fix, and
    never connects to the Bot API (a listening socket that nobody may reach)."""
    api = {"CONTEST_BOT_API_URL": f"http://127.0.0.1:{listener.getsockname()[1]}/bot"}
    bad_files = [
        ("round1.minutes", contest_toml(cli.cwd, "a.toml", MINUTES, 'minutes = "x"')),
        ("round1.opens", contest_toml(cli.cwd, "b.toml", "opens = 2024-08-01", "")),
    ]
    calls: list[tuple[list[str], dict[str, str]]] = [(["run"], api)]
    calls += [
        (["run"], {**api, "CONTEST_CONFIG": str(path), "CONTEST_BOT_TOKEN": TOKEN})
        for _, path in bad_files
    ]
    no_token, *bad_config = cli.many(*calls)

    assert no_token.returncode != 0
    assert "CONTEST_BOT_TOKEN" in no_token.stderr
    for (key, _), result in zip(bad_files, bad_config, strict=True):
        assert result.returncode != 0, result.stderr
        assert key in result.stderr
        assert "Lỗi cấu hình cuộc thi" in result.stderr
        assert "Traceback" not in result.stderr
    assert "round1.minutes phải là số nguyên, nhỏ nhất là 1" in bad_config[0].stderr
    assert no_connection(listener)
    assert not cli.db.exists()


def test_run_with_round1_minutes_missing_names_the_key(cli: Cli) -> None:
    config = contest_toml(cli.cwd, "contest.toml", MINUTES, "")
    # With this bug the bot goes on to the Bot API: a closed port, so it fails fast.
    result = cli("run", timeout=20, CONTEST_CONFIG=str(config), CONTEST_BOT_TOKEN=TOKEN)
    assert result.returncode != 0
    assert "round1.minutes" in result.stderr


async def test_replacing_the_bank_withdraws_what_the_file_lacks(cli: Cli) -> None:
    await seed_questions(cli.db)
    text = (SAMPLES / "questions.csv").read_text(encoding="utf-8-sig")
    header, *rows = list(csv.reader(io.StringIO(text)))
    fixed = [*rows[0][:1], rows[0][1] + " (đã sửa)", *rows[0][2:]]
    corrected = write_csv(cli.cwd / "ngan-hang-moi.csv", [header, fixed, *rows[1:]])

    result = cli("import-questions", "--replace", str(corrected))
    assert result.returncode == 0, result.stderr
    assert (
        "Đã nhập câu hỏi: 1 mục mới, 85 mục cập nhật, "
        "1 câu hỏi không có trong tệp được ngừng sử dụng." in result.stdout
    )
    with closing(sqlite3.connect(cli.db)) as connection:
        active = dict(connection.execute("SELECT text, active FROM questions").fetchall())
    assert active[rows[0][1]] == 0 and active[fixed[1]] == 1
    assert sum(active.values()) == 86

    small = write_csv(cli.cwd / "it-cau.csv", [header, *rows[:5]])
    refused = cli("import-questions", "--replace", str(small))
    assert refused.returncode == 1
    assert "Tệp chỉ có 5 câu hỏi, ít hơn 20 câu của một lần thi" in refused.stderr
    with closing(sqlite3.connect(cli.db)) as connection:
        assert connection.execute("SELECT sum(active) FROM questions").fetchone()[0] == 86


def test_unusable_settings_database_and_api_are_explained_without_a_traceback(
    cli: Cli, listener: socket.socket
) -> None:
    """A wrong backend name, a database that cannot be opened, a Bot API that cannot be
    reached in webhook mode: each stops with a Vietnamese message naming what to check."""
    missing = f"sqlite:///{cli.cwd / 'no' / 'such' / 'folder' / 'x.db'}"
    webhook = {
        "CONTEST_BOT_TOKEN": TOKEN,
        "CONTEST_WEBHOOK_URL": "https://bot.example.vn/hook-abc",
        "CONTEST_WEBHOOK_SECRET": "s3cret",
        "CONTEST_WEBHOOK_PORT": str(free_port()),
    }
    api = {"CONTEST_BOT_API_URL": f"http://127.0.0.1:{listener.getsockname()[1]}/bot"}
    backend, migrate, imported, hooked = cli.many(
        (["run"], {**api, "CONTEST_BOT_TOKEN": TOKEN, "CONTEST_HTTP_BACKEND": "requests"}),
        (["migrate"], {"CONTEST_DATABASE_URL": missing}),
        (["import-units", str(SAMPLES / "units.csv")], {"CONTEST_DATABASE_URL": missing}),
        (["run", "--webhook"], webhook),
    )
    for result in (backend, migrate, imported, hooked):
        assert result.returncode != 0
        assert "Traceback" not in result.stderr, result.stderr
        assert "Unclosed" not in result.stderr, result.stderr  # sessions closed on the way out
    assert "Lỗi biến môi trường: 1 giá trị không hợp lệ: CONTEST_HTTP_BACKEND" in backend.stderr
    assert no_connection(listener)
    for result in (migrate, imported):
        assert "Không kết nối hoặc không mở được cơ sở dữ liệu" in result.stderr
        assert "CONTEST_DATABASE_URL" in result.stderr
        assert "Cơ sở dữ liệu đã được cập nhật" not in result.stdout
        # It says what to check; it does not send the operator to a log full of data.
        assert "--log-level" not in result.stderr and "DEBUG" not in result.stderr
    assert "Không kết nối được với Telegram Bot API" in hooked.stderr
    assert not cli.db.exists()


# ------------------------------------------------------------------ logging flags


def test_log_flags(cli: Cli) -> None:
    """``--log-level`` takes any case; ``--log-raw-payloads`` warns, in Vietnamese, that the
    log will hold personal data; an unknown level is refused by the parser."""
    raw, lower, unknown = cli.many(
        (["--log-raw-payloads", "migrate"], {}),
        (["--log-level", "debug", "migrate"], {}),
        (["--log-level", "LOUD", "migrate"], {}),
    )
    assert raw.returncode == 0, raw.stderr
    assert "--log-raw-payloads" in raw.stderr and "DỮ LIỆU CÁ NHÂN" in raw.stderr
    assert lower.returncode == 0, lower.stderr
    assert "DỮ LIỆU CÁ NHÂN" not in lower.stderr
    assert unknown.returncode == 2 and "LOUD" in unknown.stderr


# ------------------------------------------------------------------ a read-only database

# Root writes through file modes (CAP_DAC_OVERRIDE): as root, the command runs with that
# capability dropped from its bounding set, so a read-only file is read-only for it too.
_DROP_OVERRIDE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
    if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
        raise SystemExit(f"prctl: {os.strerror(ctypes.get_errno())}")
os.execv(sys.argv[1], sys.argv[1:])
"""


def unprivileged(command: list[str]) -> list[str]:
    """``command`` as run by someone whom file modes bind (root without its override)."""
    if os.geteuid() != 0:
        return command
    wrapped = [sys.executable, "-c", _DROP_OVERRIDE, *command]
    probe = subprocess.run([*wrapped[:3], sys.executable, "-c", ""], check=False)
    if probe.returncode != 0:
        pytest.skip("running as root, and CAP_DAC_OVERRIDE cannot be dropped here")
    return wrapped


READ_ONLY = "cơ sở dữ liệu đang ở chế độ chỉ đọc"


async def test_a_read_only_database_is_explained_without_a_traceback(
    cli: Cli, fake_api: FakeBotApi
) -> None:
    """A database the bot may read but not write: the file and its folder read-only (the
    file opens, its WAL set-up fails), an empty read-only file (the migration fails), a
    migrated read-only file in a writable folder (nothing to migrate: only a write shows
    it). ``migrate``, the imports and ``run`` (polling and webhook) each stop at start-up
    with a Vietnamese message naming what to check, and exit 1."""
    cli.command = unprivileged(cli.command)
    await seed_questions(cli.db)  # migrated; closing it folded the WAL back into the file
    locked = cli.cwd / "locked"
    locked.mkdir()
    (locked / "contest.db").write_bytes(cli.db.read_bytes())
    empty = cli.cwd / "empty.db"
    empty.touch()
    read_only = [cli.db, locked / "contest.db", empty, locked]
    for path in read_only:
        path.chmod(0o555 if path.is_dir() else 0o444)
    bot = {"CONTEST_BOT_TOKEN": fake_api.token, "CONTEST_BOT_API_URL": fake_api.base_url}
    webhook = {
        **bot,
        "CONTEST_WEBHOOK_URL": "https://bot.example.vn/hook-abc",
        "CONTEST_WEBHOOK_SECRET": "s3cret",
        "CONTEST_WEBHOOK_PORT": str(free_port()),
    }
    in_folder = {"CONTEST_DATABASE_URL": f"sqlite:///{locked / 'contest.db'}"}
    try:
        results = await asyncio.to_thread(
            cli.many,
            (["migrate"], in_folder),
            (["import-units", str(SAMPLES / "units.csv")], in_folder),
            (["migrate"], {"CONTEST_DATABASE_URL": f"sqlite:///{empty}"}),
            (["migrate"], {}),
            (["run"], bot),
            (["run", "--webhook"], webhook),
        )
    finally:
        for path in read_only:
            path.chmod(0o755 if path.is_dir() else 0o644)
    paths = [locked / "contest.db"] * 2 + [empty] + [cli.db] * 3
    for result, path in zip(results, paths, strict=True):
        assert result.returncode == 1, result.stderr
        assert READ_ONLY in result.stderr, result.stderr
        assert f"tệp {path}" in result.stderr
        for hint in ("quyền ghi", "thư mục", "CONTEST_DATABASE_URL", "ổ đĩa"):
            assert hint in result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert "readonly" not in result.stderr  # not the driver's raw message
        assert "Unclosed" not in result.stderr, result.stderr
    assert not fake_api.calls_of("setWebhook")  # stopped before serving anything
    assert cli.count("units") == 0


@pytest.mark.postgres
async def test_a_read_only_postgresql_database_is_reported_as_such() -> None:
    """A server that refuses writes (a hot standby, ``default_transaction_read_only``)."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (set by .ci/run)")
    schema = f"ro_{os.getpid()}_{free_port()}"
    admin = create_engine(base)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"
    try:
        writable = create_engine(url)
        try:
            await migrate(writable)
        finally:
            await writable.dispose()
        for migrated in (True, False):
            if not migrated:  # nothing migrated yet: the migration itself is refused
                async with admin.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                    await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            engine = create_engine(
                url, connect_args={"server_settings": {"default_transaction_read_only": "on"}}
            )
            try:
                with pytest.raises(DatabaseReadOnly):
                    await migrate(engine)
            finally:
                await engine.dispose()
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


def test_admin_runs_the_chat_commands_from_the_command_line(cli: Cli) -> None:
    """``contest-bot admin``: the organisers' chat screens on the server's command line, the
    choices followed by number, every request in the same audit log as the chat's."""
    assert cli("import-units", str(SAMPLES / "units.csv")).returncode == 0
    shown = cli("admin", "thongke")
    assert shown.returncode == 0, shown.stderr
    assert "THỐNG KÊ THAM GIA VÒNG 1" in shown.stdout
    assert "0/45 đơn vị đạt chỉ tiêu" in shown.stdout
    board = cli("admin", "bxh", "--choose", "2")  # the reply's second choice: round 2
    assert "BẢNG XẾP HẠNG VÒNG 1" in board.stdout and "BẢNG XẾP HẠNG VÒNG 2" in board.stdout
    refused = cli("admin", "khoa", "0912345678", "Trùng tài khoản")
    assert refused.stdout.count("Chưa có thí sinh nào đăng ký với số điện thoại") == 1
    wrong = cli("admin", "bxh", "--choose", "7")
    assert wrong.returncode == 2 and "không phải số thứ tự" in wrong.stderr
    unknown = cli("admin", "xoahet")
    assert unknown.returncode == 2 and "Không có lệnh quản trị “xoahet”" in unknown.stderr
    log = cli("admin", "nhatky").stdout
    user = log.split("cli:", 1)[1].split(":", 1)[0]
    assert "⚠️" in log and f"cli:{user}: khoa · /khoa" in log
    assert f"cli:{user}: thongke · /thongke" in log
