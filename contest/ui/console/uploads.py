"""Files sent in the chat: the question bank or the units, checked exactly as the command
line checks them, then applied after the organiser chooses how (and confirms)."""

from __future__ import annotations

from contest.errors import ImportProblem
from contest.model import Role
from contest.ui.markup import h
from contest.ui.reply import Choice, Menu, Reply
from contest.ui.router import CONSOLE, Request, Ui, action
from contest.ui.texts import ERRORS, import_problem
from contest.usecases.console import (
    QUESTIONS,
    REPLACE,
    UNITS,
    UPSERT,
    BankPlan,
    Listed,
    UploadCheck,
    UploadDone,
)

MAX_PROBLEMS = 30  # problems listed in a reply (the count says how many more)
MAX_REPLY_CHARS = 3_600  # the list stops earlier if the reply would get longer than this
MAX_LISTED = 10  # questions named in a plan
MODES = {"u": UPSERT, "r": REPLACE}
KINDS = {"q": QUESTIONS, "u": UNITS}
BTN_CANCEL = "Hủy"

ERRORS.update(
    {
        "upload_expired": "Tệp này đã được nhập, đã hủy hoặc đã hết hiệu lực (sau 1 giờ). "
        "Vui lòng gửi lại tệp.",
        "upload_bank_too_large": "Ngân hàng câu hỏi chỉ được có tối đa {limit} câu hỏi đang "
        "dùng; sau lần nhập này sẽ có {total} câu. Không có câu hỏi nào được ghi. Hãy chọn "
        "“Thay toàn bộ”, hoặc bớt câu hỏi trong tệp.",
    }
)


def number(value: int) -> str:
    return f"{value:,}".replace(",", ".")


def short(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rejected(filename: str, problems: list[ImportProblem]) -> str:
    """Every problem by row and column; a long list: the first ones and the count."""
    lines = [
        f"❌ Tệp “{h(short(filename, 60))}” bị từ chối, không có dữ liệu nào được ghi "
        f"({number(len(problems))} lỗi):"
    ]
    size = len(lines[0])
    shown = 0
    for problem in problems[:MAX_PROBLEMS]:
        line = f"- {h(import_problem(problem))}"
        if size + len(line) > MAX_REPLY_CHARS:
            break
        lines.append(line)
        size += len(line) + 1
        shown += 1
    if shown < len(problems):
        lines.append(f"… và {number(len(problems) - shown)} lỗi khác.")
    lines.append("Vui lòng sửa tệp rồi gửi lại.")
    return "\n".join(lines)


def _listed(items: list[Listed]) -> list[str]:
    lines = [f"• #{i.question_id} “{h(short(i.text))}”" for i in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        lines.append(f"• … và {number(len(items) - MAX_LISTED)} câu khác.")
    return lines


def bank_counts(plan: BankPlan) -> str:
    return (
        f"{number(plan.created)} câu mới, {number(plan.updated)} câu sửa, "
        f"{number(plan.unchanged)} câu giữ nguyên"
    )


def bank_warnings(plan: BankPlan) -> list[str]:
    lines: list[str] = []
    if plan.kept:
        lines += [
            "",
            f"⚠️ {number(len(plan.kept))} câu đã có trong bài thi nhưng tệp ghi đáp án hoặc "
            "phương án khác: các câu này được giữ nguyên để không bài thi nào bị thay đổi. "
            "Muốn sửa, dùng /suacau &lt;mã câu&gt; (hệ thống chấm lại các bài đã làm):",
            *_listed(plan.kept),
        ]
    if plan.voided:
        lines += [
            "",
            f"🚫 {number(len(plan.voided))} câu trong tệp đã bị hủy: vẫn giữ trạng thái hủy.",
            *_listed(plan.voided),
        ]
    return lines


def check_reply(check: UploadCheck) -> Reply:
    """The reply to a file sent, or to the kind chosen for it."""
    name = h(short(check.filename, 60))
    if check.problems:
        return Reply(rejected(check.filename, check.problems))
    assert check.token is not None
    token = check.token
    cancel = Choice(BTN_CANCEL, action("up_no", token))
    if check.what is None:
        return Reply(
            f"Không nhận ra loại tệp “{name}” từ dòng tiêu đề. Tệp này là:",
            Menu.of(
                [
                    Choice("📚 Ngân hàng câu hỏi", action("up_kind", token, "q")),
                    Choice("🏢 Danh sách đơn vị", action("up_kind", token, "u")),
                ],
                [cancel],
            ),
        )
    if check.units is not None:
        units = check.units
        return Reply(
            f"🏢 <b>TỆP DANH SÁCH ĐƠN VỊ HỢP LỆ</b> — “{name}”: {number(units.rows)} đơn vị "
            f"({number(units.created)} đơn vị mới, {number(units.updated)} đơn vị cập nhật).\n\n"
            "Bấm “Xác nhận” để nhập.",
            Menu.of([Choice("✅ Xác nhận", action("up_ok", token, "u")), cancel]),
        )
    plan = check.bank
    assert plan is not None
    lines = [
        f"📚 <b>TỆP NGÂN HÀNG CÂU HỎI HỢP LỆ</b> — “{name}”: {number(plan.rows)} câu hỏi.",
        f"So với ngân hàng hiện tại: {bank_counts(plan)}.",
        *bank_warnings(plan),
        "",
        "Chọn cách nhập:",
        f"• “Thêm/cập nhật”: thêm câu mới, cập nhật câu đã có; sau khi nhập ngân hàng có "
        f"{number(plan.active_after_upsert)} câu đang dùng.",
        f"• “Thay toàn bộ”: tệp trở thành toàn bộ ngân hàng; {number(plan.withdrawn)} câu đang "
        "dùng không có trong tệp sẽ ngừng sử dụng (vẫn giữ cho các bài thi đã rút); sau khi "
        f"nhập ngân hàng có {number(plan.active_after_replace)} câu đang dùng.",
        "",
        "Bài thi đang làm và điểm đã có không thay đổi.",
    ]
    return Reply(
        "\n".join(lines),
        Menu.of(
            [
                Choice("➕ Thêm/cập nhật", action("up_mode", token, "u")),
                Choice("♻️ Thay toàn bộ", action("up_mode", token, "r")),
            ],
            [cancel],
        ),
    )


@CONSOLE.upload(role=Role.ORGANISER)
async def upload(ui: Ui, request: Request) -> Reply:
    """A file sent to the bot: the bank or the units, by its header."""
    assert request.upload is not None
    check = await ui.service.console.receive_upload(
        request.actor, request.upload.filename, request.upload.content
    )
    return check_reply(check)


@CONSOLE.action("up_kind", role=Role.ORGANISER, writes=True)
async def choose_kind(ui: Ui, request: Request) -> Reply:
    token, kind = _args(request)
    what = KINDS.get(kind, "")
    return check_reply(await ui.service.console.choose_kind(request.actor, token, what))


@CONSOLE.action("up_mode", role=Role.ORGANISER)
async def choose_mode(ui: Ui, request: Request) -> Reply:
    token, mode_code = _args(request)
    mode = MODES.get(mode_code, "")
    check = await ui.service.console.upload_plan(request.actor, token)
    plan = check.bank
    if plan is None or not mode:
        return check_reply(check)
    name = h(short(check.filename, 60))
    if mode == REPLACE:
        lines = [
            f"Xác nhận <b>thay toàn bộ</b> ngân hàng câu hỏi bằng tệp “{name}”: "
            f"{bank_counts(plan)}; {number(plan.withdrawn)} câu đang dùng không có trong tệp "
            "ngừng sử dụng (vẫn giữ cho các bài thi đã rút). Sau khi nhập ngân hàng có "
            f"{number(plan.active_after_replace)} câu đang dùng."
        ]
    else:
        lines = [
            f"Xác nhận <b>thêm/cập nhật</b> ngân hàng câu hỏi từ tệp “{name}”: "
            f"{bank_counts(plan)}. Sau khi nhập ngân hàng có "
            f"{number(plan.active_after_upsert)} câu đang dùng."
        ]
    lines += bank_warnings(plan)
    return Reply(
        "\n".join(lines),
        Menu.of(
            [
                Choice("✅ Xác nhận", action("up_ok", token, mode_code)),
                Choice(BTN_CANCEL, action("up_no", token)),
            ]
        ),
    )


@CONSOLE.action("up_ok", role=Role.ORGANISER, writes=True)
async def confirm(ui: Ui, request: Request) -> Reply:
    token, mode_code = _args(request)
    done = await ui.service.console.confirm_upload(request.actor, token, MODES.get(mode_code, ""))
    return Reply(done_text(done))


@CONSOLE.action("up_no", role=Role.ORGANISER)
async def cancel(ui: Ui, request: Request) -> Reply:
    token = request.args[0] if request.args else ""
    await ui.service.console.cancel_upload(request.actor, token)
    return Reply("Đã hủy: không có dữ liệu nào được ghi từ tệp này.")


def done_text(done: UploadDone) -> str:
    if done.what == UNITS:
        units = done.units
        assert units is not None
        return (
            f"✅ Đã nhập danh sách đơn vị: {number(units.created)} đơn vị mới, "
            f"{number(units.updated)} đơn vị cập nhật."
        )
    plan = done.bank
    assert plan is not None
    how = "thay toàn bộ" if done.mode == REPLACE else "thêm/cập nhật"
    text = f"✅ Đã nhập ngân hàng câu hỏi ({how}): {bank_counts(plan)}"
    if done.mode == REPLACE:
        text += f"; {number(done.summary.withdrawn)} câu ngừng sử dụng"
    if plan.kept:
        text += f"; {number(len(plan.kept))} câu đã dùng trong bài thi được giữ nguyên"
    return text + ". Bot dùng ngân hàng mới trong vòng 1 phút."


def _args(request: Request) -> tuple[str, str]:
    token = request.args[0] if request.args else ""
    second = request.args[1] if len(request.args) > 1 else ""
    return token, second
