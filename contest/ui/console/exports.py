"""/xuat: the organisers' workbook (contestants and their results, every attempt, the units'
participation, the item analysis, feedback, the audit log) sent as an XLSX document.

The reply says at once that the file is being made (or that it waits for another
organiser's); the document follows when the worker process is done (``Reply.later``).
"""

from __future__ import annotations

from contest.errors import ContestError
from contest.model import Role
from contest.ports import ExportedWorkbook
from contest.rules import to_local
from contest.ui import texts
from contest.ui.reply import Document, Reply
from contest.ui.router import CONSOLE, Request, Ui

# Telegram's limit for a document a bot sends; the command line has none.
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024

MAKING = "⏳ Đang tạo tệp… Tệp Excel sẽ được gửi vào đây khi xong (thường dưới một phút)."
QUEUED = (
    "⏳ Đang tạo tệp… Một thành viên Ban Tổ chức khác đang xuất dữ liệu: tệp của bạn sẽ "
    "được tạo ngay sau đó và gửi vào đây."
)
TOO_BIG = (
    "⚠️ Tệp dữ liệu nặng {size} MB, quá giới hạn {limit} MB của một tệp gửi qua Telegram. "
    "Vui lòng xuất trên máy chủ bằng lệnh: contest-bot export du-lieu.xlsx"
)

texts.ERRORS.update(
    {
        "export_unavailable": "Chức năng xuất dữ liệu chưa được bật trên máy chủ này. "
        "Vui lòng dùng lệnh contest-bot export trên máy chủ.",
        "export_failed": "Không tạo được tệp dữ liệu. Vui lòng thử lại sau ít phút; nếu vẫn "
        "lỗi, hãy báo bộ phận kỹ thuật (chi tiết đã được ghi vào nhật ký của bot).",
    }
)


def num(value: int) -> str:
    """1200 -> '1.200' (Vietnamese style)."""
    return f"{value:,}".replace(",", ".")


def filename(made_at_local: str) -> str:
    return f"du-lieu-cuoc-thi-{made_at_local}.xlsx"


def caption(made: ExportedWorkbook, when: str, round_number: int) -> str:
    return (
        f"📊 <b>Dữ liệu cuộc thi</b> (vòng {round_number}), lúc {when}: "
        f"{num(made.contestants)} thí sinh đã đăng ký, {num(made.ranked)} có kết quả "
        f"được xếp hạng, {num(made.attempts)} lần thi, phân tích {num(made.questions)} câu "
        "hỏi.\nTệp có số điện thoại của thí sinh: chỉ dùng trong Ban Tổ chức."
    )


@CONSOLE.command(
    "xuat",
    role=Role.ORGANISER,
    writes=True,  # the use case audits it when the file is made (or fails)
    help="Xuất dữ liệu cuộc thi ra tệp Excel (kết quả, lần thi, đơn vị, câu hỏi)",
)
async def export(ui: Ui, request: Request) -> Reply:
    exports = ui.service.exports
    actor = request.actor
    round_number = 1

    async def deliver() -> Reply:
        try:
            made = await exports.workbook(actor, round_number)
        except ContestError as exc:
            return Reply("⚠️ " + texts.error(exc.code, **exc.params))
        if len(made.data) > MAX_DOCUMENT_BYTES:
            size = f"{len(made.data) / 1024 / 1024:.1f}".replace(".", ",")
            return Reply(TOO_BIG.format(size=size, limit=MAX_DOCUMENT_BYTES // 1024 // 1024))
        local = to_local(ui.service.clock.now())
        return Reply(
            document=Document(
                filename(f"{local:%Y%m%d-%H%M}"),
                made.data,
                caption(made, f"{local:%H:%M %d/%m/%Y}", round_number),
            )
        )

    return Reply(QUEUED if exports.busy else MAKING, later=deliver)
