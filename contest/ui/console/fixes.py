"""/suacau: fixing a question during the contest (its wording, its key, or a void), each
shown with what it touches before the organiser confirms; and the message a contestant
gets when a fix changed their result (notification kind ``result_changed``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contest.errors import ContestError, ImportRejected
from contest.model import AttemptResult, Question, Role
from contest.ports import FIX_KEY, FIX_VOID, FIX_WORDING, FixImpact, Notification, QuestionState
from contest.rules import to_local
from contest.ui.markup import h
from contest.ui.notices import Notice, notice
from contest.ui.reply import Choice, Expect, Menu, Reply
from contest.ui.router import CONSOLE, Request, Ui, action
from contest.ui.texts import ERRORS, IMPORT_REASONS, best_line, fmt_duration
from contest.usecases.fixes import (
    FIX_NOTIFICATION,
    SEARCH_LIMIT,
    Change,
    FixDone,
    FixPreview,
    ResultChange,
)

if TYPE_CHECKING:
    from contest.services import ContestService

LABELS = "ABC"
WORDING_INPUT = "fix_wording"
BTN_CONFIRM = "✅ Xác nhận"
BTN_CANCEL = "Hủy"

USAGE = (
    "Cách dùng: /suacau <mã câu hỏi hoặc một phần nội dung câu hỏi>, ví dụ: /suacau 12 "
    "hoặc /suacau thủ tục hành chính."
)
ASK_WORDING = (
    "Gõ nội dung mới của câu #{id} trong một tin nhắn: dòng đầu là câu hỏi, sau đó (nếu "
    "cần sửa) các dòng phương án bắt đầu bằng “A.”, “B.”, “C.”. Phương án không gõ lại "
    "được giữ nguyên; chỉ gõ phương án thì câu hỏi giữ nguyên. Đáp án đúng giữ nguyên vị "
    "trí ({key}). Ví dụ:\n"
    "<code>Theo quy định, thời hạn giải quyết là bao nhiêu ngày?\n"
    "A. 05 ngày làm việc\nB. 07 ngày làm việc\nC. 10 ngày làm việc</code>"
)

ERRORS.update(
    {
        "fix_usage": USAGE,
        "fix_query_short": "Vui lòng gõ ít nhất {least} ký tự của nội dung câu hỏi, hoặc "
        "mã câu hỏi.",
        "question_unknown": "Không có câu hỏi nào có mã {question_id}.",
        "question_voided": "Câu #{question_id} đã bị hủy: không sửa đáp án hay hủy lại được nữa.",
        "fix_same_key": "Đáp án đúng hiện tại đã là {key}.",
        "fix_no_change": "Nội dung mới giống hệt nội dung hiện tại: không có gì để sửa.",
        "fix_text_taken": "Đã có câu hỏi khác (#{other}) với nội dung này. Hãy gõ nội dung khác.",
        "fix_expired": "Yêu cầu sửa câu hỏi này đã được thực hiện, đã hủy hoặc đã hết hiệu "
        "lực. Gõ /suacau để bắt đầu lại.",
        "fix_stale": "Câu #{question_id} vừa được thay đổi sau khi bạn xem: không có gì được "
        "sửa. Gõ /suacau {question_id} để xem lại.",
        "void_bank_too_small": "Không thể hủy câu này: ngân hàng chỉ còn {left} câu hỏi đang "
        "dùng, ít hơn {needed} câu của một lần thi. Hãy bổ sung câu hỏi trước.",
    }
)


def number(value: int) -> str:
    """1234 -> 1.234 (Vietnamese style)."""
    return f"{value:,}".replace(",", ".")


def short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_of(state: QuestionState) -> str:
    if state.voided_at is not None:
        return f"⛔ đã hủy lúc {to_local(state.voided_at):%H:%M ngày %d/%m/%Y}"
    return "đang dùng" if state.active else "ngừng dùng (không còn được rút)"


def question_lines(state: QuestionState, *, key: int | None = None) -> list[str]:
    """The question with its options, the key marked (``key``: another one to mark)."""
    q = state.question
    marked = q.answer if key is None else key
    lines = [f"<i>{h(q.topic)}</i>", f"<b>{h(q.text)}</b>"]
    for index, option in enumerate(q.options):
        lines.append(f"{LABELS[index]}. {h(option)}" + (" ✅" if index == marked else ""))
    return lines


def touched(impact: FixImpact) -> str:
    running = f" ({number(impact.in_progress)} bài đang làm)" if impact.in_progress else ""
    return (
        f"Đã có {number(impact.attempts)} bài thi của {number(impact.persons)} người rút câu "
        f"này{running}."
    )


def impact_line(impact: FixImpact) -> str:
    """“Ảnh hưởng 1.234 bài thi của 1.100 người; 300 người sẽ thay đổi kết quả”."""
    return (
        f"Ảnh hưởng <b>{number(impact.attempts)}</b> bài thi của <b>{number(impact.persons)}"
        f"</b> người; <b>{number(impact.changed_persons)}</b> người sẽ thay đổi kết quả "
        f"({number(impact.changed_attempts)} bài đã nộp được chấm lại khác đi)."
    )


def confirm_menu(token: str) -> Menu:
    return Menu.of(
        [Choice(BTN_CONFIRM, action("fix_ok", token)), Choice(BTN_CANCEL, action("fix_no", token))]
    )


# ------------------------------------------------------------------ finding a question


@CONSOLE.command(
    "suacau",
    role=Role.ORGANISER,
    help="Sửa câu hỏi đang thi (nội dung, đáp án, hủy câu): /suacau <mã hoặc nội dung>",
)
async def find(ui: Ui, request: Request) -> Reply:
    if not request.args:
        return Reply(h(USAGE))
    query = " ".join(request.args)
    found = await ui.service.fixes.find(query)
    if not found.questions:
        return Reply(f"Không tìm thấy câu hỏi nào khớp với “{h(short(query, 60))}”.")
    if len(found.questions) == 1:
        return await _question(ui, found.questions[0].question.id)
    lines = [f"<b>🔎 Có {number(found.total)} câu hỏi khớp với “{h(short(query, 60))}”</b>", ""]
    choices = []
    for index, state in enumerate(found.questions, start=1):
        mark = "" if state.active else f" [{status_of(state)}]"
        lines.append(f"{index}. #{state.question.id}{h(mark)} — {h(short(state.question.text))}")
        choices.append(Choice(str(index), action("fix", state.question.id)))
    if found.total > SEARCH_LIMIT:
        lines += ["", f"Đây là {SEARCH_LIMIT} câu đầu tiên; hãy gõ cụ thể hơn."]
    lines += ["", "Chọn câu cần sửa:"]
    return Reply("\n".join(lines), Menu.of(choices[:4], choices[4:]))


@CONSOLE.action("fix", role=Role.ORGANISER)
async def show(ui: Ui, request: Request) -> Reply:
    return await _question(ui, _id(request, 0))


async def _question(ui: Ui, question_id: int) -> Reply:
    view = await ui.service.fixes.view(question_id)
    state = view.state
    lines = [f"<b>✏️ CÂU HỎI #{state.question.id}</b> · {status_of(state)}", ""]
    lines += question_lines(state)
    lines += ["", f"Đáp án đúng: <b>{LABELS[state.question.answer]}</b>.", touched(view.impact)]
    choices = [Choice("✏️ Sửa nội dung", action("fix_text", question_id))]
    if not state.voided:
        choices += [
            Choice("🔑 Sửa đáp án", action("fix_key", question_id)),
            Choice("🚫 Hủy câu hỏi", action("fix_void", question_id)),
        ]
    lines += ["", "Chọn việc cần làm:"]
    return Reply("\n".join(lines), Menu.column(choices))


def _id(request: Request, index: int) -> int:
    """A number carried by a pressed choice (a forged one changes nothing)."""
    if len(request.args) <= index or not request.args[index].isdigit():
        raise ContestError("fix_expired")
    return int(request.args[index])


# ------------------------------------------------------------------ the three fixes


@CONSOLE.action("fix_key", role=Role.ORGANISER)
async def choose_key(ui: Ui, request: Request) -> Reply:
    question_id = _id(request, 0)
    view = await ui.service.fixes.view(question_id)
    state = view.state
    current = state.question.answer
    lines = [f"<b>🔑 SỬA ĐÁP ÁN CÂU #{question_id}</b>", ""]
    lines += question_lines(state)
    lines += ["", f"Đáp án đúng hiện tại: <b>{LABELS[current]}</b>. Chọn đáp án đúng mới:"]
    keys = [
        Choice(LABELS[k], action("fix_keyto", question_id, k)) for k in range(3) if k != current
    ]
    return Reply(
        "\n".join(lines), Menu.of(keys, [Choice("◀️ Quay lại", action("fix", question_id))])
    )


@CONSOLE.action("fix_keyto", role=Role.ORGANISER)
async def preview_key(ui: Ui, request: Request) -> Reply:
    question_id, key = _id(request, 0), _id(request, 1)
    preview = await ui.service.fixes.prepare(request.actor, question_id, Change(FIX_KEY, key=key))
    return _preview(preview)


@CONSOLE.action("fix_void", role=Role.ORGANISER)
async def preview_void(ui: Ui, request: Request) -> Reply:
    preview = await ui.service.fixes.prepare(request.actor, _id(request, 0), Change(FIX_VOID))
    return _preview(preview)


@CONSOLE.action("fix_text", role=Role.ORGANISER)
async def ask_wording(ui: Ui, request: Request) -> Reply:
    question_id = _id(request, 0)
    view = await ui.service.fixes.view(question_id)
    text = ASK_WORDING.format(id=question_id, key=LABELS[view.state.question.answer])
    return Reply(
        "\n".join(
            [f"<b>✏️ SỬA NỘI DUNG CÂU #{question_id}</b>", "", *question_lines(view.state), ""]
        )
        + text,
        expect=Expect(WORDING_INPUT, {"question_id": question_id}),
        new_message=True,
    )


@CONSOLE.input(WORDING_INPUT, role=Role.ORGANISER)
async def preview_wording(ui: Ui, request: Request) -> Reply:
    question_id = int(str(request.data.get("question_id", "0")) or 0)
    try:
        preview = await ui.service.fixes.prepare_wording(
            request.actor, question_id, request.text or ""
        )
    except ImportRejected as exc:
        lines = ["Nội dung mới chưa hợp lệ:"]
        lines += [f"- {h(_wording_problem(p.column, p.reason, p.value))}" for p in exc.problems]
        lines += ["", "Vui lòng gõ lại nội dung mới (hoặc gõ /suacau để bắt đầu lại)."]
        return Reply("\n".join(lines), expect=Expect(WORDING_INPUT, dict(request.data)))
    return _preview(preview)


COLUMN_NAMES = {"question": "Câu hỏi", "a": "Phương án A", "b": "Phương án B", "c": "Phương án C"}


def _wording_problem(column: str, reason: str, value: str) -> str:
    template = IMPORT_REASONS.get(reason, reason)
    if "{value}" in template:
        template = template.format(value=value)
    return f"{COLUMN_NAMES.get(column, column)}: {template}"


def _preview(preview: FixPreview) -> Reply:
    state, change, impact = preview.state, preview.change, preview.impact
    qid = state.question.id
    if change.kind == FIX_KEY:
        assert change.key is not None
        lines = [f"<b>🔑 SỬA ĐÁP ÁN CÂU #{qid}</b>", ""]
        lines += question_lines(state, key=change.key)
        lines += [
            "",
            f"Đáp án đúng: {LABELS[state.question.answer]} → <b>{LABELS[change.key]}</b>.",
            impact_line(impact),
        ]
        if impact.in_progress:
            lines.append(
                f"{number(impact.in_progress)} bài đang làm được chấm lại theo đáp án mới; kết "
                "quả của các bài này tính khi nộp bài như thường lệ."
            )
    elif change.kind == FIX_VOID:
        lines = [f"<b>🚫 HỦY CÂU HỎI #{qid}</b>", "", *question_lines(state), ""]
        lines += [
            "Câu hỏi bị hủy được tính là trả lời đúng cho mọi người đã rút câu này (kể cả "
            "chưa trả lời) và không còn được rút trong các lần thi sau.",
            impact_line(impact),
        ]
    else:
        assert change.text is not None and change.options is not None
        after = QuestionState(
            Question(qid, state.question.topic, change.text, change.options, state.question.answer),
            state.active,
            state.voided_at,
        )
        lines = [f"<b>✏️ SỬA NỘI DUNG CÂU #{qid}</b>", "", "<b>Hiện tại:</b>"]
        lines += question_lines(state)
        lines += ["", "<b>Sau khi sửa:</b>", *question_lines(after), ""]
        lines += [
            f"Đáp án đúng vẫn là {LABELS[state.question.answer]}. Không bài thi nào được chấm "
            "lại. " + touched(impact),
        ]
    if change.kind != FIX_WORDING and impact.changed_persons:
        lines.append("Mỗi người thay đổi kết quả sẽ nhận một tin nhắn báo kết quả mới.")
    lines += ["", "Bấm “Xác nhận” để thực hiện."]
    return Reply("\n".join(lines), confirm_menu(preview.token))


@CONSOLE.action("fix_ok", role=Role.ORGANISER, writes=True)
async def confirm(ui: Ui, request: Request) -> Reply:
    token = request.args[0] if request.args else ""
    done = await ui.service.fixes.confirm(request.actor, token)
    return Reply(done_text(done))


@CONSOLE.action("fix_no", role=Role.ORGANISER)
async def cancel(ui: Ui, request: Request) -> Reply:
    token = request.args[0] if request.args else ""
    await ui.service.fixes.cancel(request.actor, token)
    return Reply("Đã hủy yêu cầu sửa câu hỏi; không có gì thay đổi.")


def done_text(done: FixDone) -> str:
    qid = done.state.question.id
    regraded = done.regraded
    if done.change.kind == FIX_WORDING:
        return (
            f"✅ Đã sửa nội dung câu #{qid}. Các bài thi hiển thị nội dung mới ngay (các tiến "
            "trình khác của hệ thống cập nhật trong vòng 1 phút); không bài thi nào được chấm "
            "lại."
        )
    assert regraded is not None
    told = (
        f"{number(regraded.notified)} người thay đổi kết quả và sẽ nhận tin nhắn báo kết quả mới."
        if regraded.notified
        else "Không ai thay đổi kết quả."
    )
    if done.change.kind == FIX_KEY:
        assert done.change.key is not None
        return (
            f"✅ Đã sửa đáp án câu #{qid}: {LABELS[done.state.question.answer]} → "
            f"{LABELS[done.change.key]}. Đã chấm lại {number(done.impact.attempts)} bài thi "
            f"của {number(done.impact.persons)} người; {number(regraded.attempts)} bài đã nộp "
            f"thay đổi điểm. {told}"
        )
    return (
        f"✅ Đã hủy câu #{qid}: câu này được tính là đúng cho {number(done.impact.attempts)} "
        f"bài thi của {number(done.impact.persons)} người và không còn được rút; "
        f"{number(regraded.attempts)} bài đã nộp thay đổi điểm. {told}"
    )


# ------------------------------------------------------------------ the contestant's notice


def result_changed_text(change: ResultChange) -> str:
    if change.kind == FIX_VOID:
        why = (
            "Ban Tổ chức đã hủy một câu hỏi trong đề thi: câu này được tính là trả lời đúng "
            "cho mọi thí sinh đã gặp câu hỏi đó."
        )
    else:
        why = (
            "Ban Tổ chức đã sửa đáp án của một câu hỏi trong đề thi, và bài thi của bạn đã "
            "được chấm lại theo đáp án đúng."
        )
    lines = ["📣 <b>KẾT QUẢ THI CỦA BẠN ĐÃ THAY ĐỔI</b>", "", why]
    for entry in change.rounds:
        lines += ["", f"<b>Kết quả mới vòng {entry.round}:</b>"]
        lines += [_result_line(r) for r in entry.results]
        if entry.best is not None:
            lines.append(
                f"⭐ Kết quả được công nhận: {best_line(entry.best)} (lần thi {entry.best.number})."
            )
    lines += ["", "Gõ /ketqua để xem lại kết quả."]
    return "\n".join(lines)


def _result_line(result: AttemptResult) -> str:
    return (
        f"• Lần thi {result.number}: {result.correct}/{result.total} câu đúng, thời gian làm "
        f"bài {fmt_duration(result.duration_seconds)}"
    )


@notice(FIX_NOTIFICATION)
async def result_changed(service: ContestService, note: Notification) -> Notice | None:
    """Rendered when it is sent: the person's results as they are then."""
    if note.person_id is None:
        return None
    change = await service.fixes.result_change(int(note.payload["fix_id"]), note.person_id)
    if change is None:
        return None
    return Notice(result_changed_text(change))
