"""Contestants' feedback, both sides, channel-neutral.

Contestants (any registered person): ``/gopy`` asks for the text (or takes it after the
command); the button «💬 Góp ý về bài thi» under a result (``result_menu``) lets them pick
the question they mean (1..20, with its short text) before they type. Organisers:
``/phanhoi`` lists the open items (paged, oldest or newest first) with the contestant, the
question and its key; «Trả lời» asks for the answer in the chat, which goes to the
contestant through the outbox (notice ``feedback_answer``); «Đóng» closes an item without
an answer. ``/phanhoi <mã số>`` shows one item in full, whatever its state.

A contestant's own requests are no console action: their routes record nothing in the audit
log (``writes=True``), and their mistakes (too long, too many) are answered, not audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from contest.errors import ContestError
from contest.model import Role
from contest.ports import FeedbackItem, Notification
from contest.rules import to_local
from contest.ui import texts
from contest.ui.markup import h
from contest.ui.notices import Notice, notice
from contest.ui.reply import Choice, Expect, Menu, Reply
from contest.ui.router import CONSOLE, Request, Ui, action
from contest.usecases.feedback import (
    ANSWERED,
    CLOSED,
    FEEDBACK_ANSWER_NOTIFICATION,
    OPEN,
    TEXT_MAX,
    AttemptQuestion,
    FeedbackPage,
    FeedbackView,
)
from contest.usecases.results import ResultsView

if TYPE_CHECKING:
    from contest.services import ContestService

BTN_FEEDBACK = "💬 Góp ý về bài thi"
BTN_CANCEL = "✖️ Hủy"
INPUT_WAIT = timedelta(hours=1)  # typed text asked for longer ago is not taken as the answer
QUESTION_ROW = 5  # question numbers per row of the picker
# What one chat message (4,096 characters) holds: an item's text in the list, and the
# feedback and the answer of an answered item shown in full.
LIST_TEXT = 350
ANSWERED_TEXT = 1400
LABELS = texts.LABELS
STATUS_NAMES = {OPEN: "chưa xử lý", ANSWERED: "đã trả lời", CLOSED: "đã đóng, không trả lời"}


def _num(value: int) -> str:
    return f"{value:,}".replace(",", ".")


texts.ERRORS.update(
    {
        "feedback_empty": "Nội dung góp ý đang trống. Vui lòng gõ nội dung (tối đa {limit} "
        "ký tự) rồi gửi.",
        "feedback_too_long": "Nội dung dài {length} ký tự, vượt quá {limit} ký tự cho phép. "
        "Vui lòng rút gọn rồi gửi lại.",
        "feedback_control": "Nội dung có ký tự điều khiển không hợp lệ ({char}). Vui lòng gõ "
        "lại nội dung rồi gửi.",
        "feedback_rate": "Bạn đã gửi {limit} góp ý trong vòng một giờ qua. Để Ban Tổ chức kịp "
        "xem xét, vui lòng gửi thêm từ {until}.",
        "feedback_attempt_unknown": "Không tìm thấy bài thi này trong các lần thi của bạn.",
        "feedback_attempt_open": "Bài thi này chưa kết thúc. Bạn có thể góp ý về bài thi sau "
        "khi nộp bài.",
        "feedback_question_unknown": "Câu hỏi không hợp lệ. Vui lòng chọn lại trong danh sách.",
        "feedback_unknown": "Không có góp ý nào mang mã số #{id}.",
        "feedback_not_open": "Góp ý #{id} đã được xử lý trước đó; không có gì thay đổi. Gõ "
        "/phanhoi {id} để xem.",
    }
)
# Mistakes in typed text: the same input is asked for again.
_RETYPE = frozenset({"feedback_empty", "feedback_too_long", "feedback_control"})


def _say(exc: ContestError) -> str:
    """An error's text, its numbers in Vietnamese style and its times local."""
    params: dict[str, object] = {}
    for key, value in exc.params.items():
        if isinstance(value, datetime):
            params[key] = f"{to_local(value):%H:%M}"
        elif isinstance(value, int):
            params[key] = _num(value) if key != "id" else str(value)
        else:
            params[key] = h(str(value))
    return texts.error(exc.code, **params)


def _cut(text: str, limit: int) -> str:
    """Shortened to ``limit`` characters, line breaks kept."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _since(request: Request) -> datetime | None:
    raw = request.data.get("since")
    try:
        return datetime.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None


def _stale(ui: Ui, request: Request) -> bool:
    since = _since(request)
    return since is None or not timedelta(0) <= ui.service.clock.now() - since <= INPUT_WAIT


def _stamp(ui: Ui) -> str:
    return ui.service.clock.now().isoformat()


def _int_arg(request: Request, index: int) -> int | None:
    if len(request.args) <= index or not request.args[index].isdigit():
        return None
    return int(request.args[index])


# ------------------------------------------------------------------ under results


def result_menu(attempt_id: int) -> Menu:
    """The button under a finished attempt's result."""
    return Menu.of([Choice(BTN_FEEDBACK, action("fb", attempt_id))])


def results_menu(view: ResultsView) -> Menu | None:
    """Under /ketqua: one button per finished attempt."""
    if not view.results:
        return None
    if len(view.results) == 1:
        return result_menu(view.results[0].attempt_id)
    return Menu.column(
        Choice(f"💬 Góp ý về lần thi {r.number}", action("fb", r.attempt_id)) for r in view.results
    )


# ------------------------------------------------------------------ contestants


def _cancel_menu() -> Menu:
    return Menu.of([Choice(BTN_CANCEL, action("fbx"))])


def _ask_text(head: str, data: dict[str, object]) -> Reply:
    return Reply(
        head + "\n\n"
        f"Vui lòng gõ nội dung góp ý hoặc câu hỏi của bạn trong <b>một tin nhắn</b> (tối đa "
        f"{_num(TEXT_MAX)} ký tự), ví dụ: “Câu này có hai đáp án đúng: A và C”.",
        _cancel_menu(),
        expect=Expect("feedback", data),
    )


def _sent(item: FeedbackItem) -> str:
    return (
        f"✅ Ban Tổ chức đã nhận góp ý của bạn (mã số <b>#{item.id}</b>). Câu trả lời sẽ được "
        "gửi cho bạn trong cuộc trò chuyện này. Cảm ơn bạn đã góp ý!"
    )


@CONSOLE.command(
    "gopy", role=Role.CONTESTANT, writes=True, help="Gửi góp ý, câu hỏi cho Ban Tổ chức"
)
async def feedback_command(ui: Ui, request: Request) -> Reply:
    """/gopy: ask for the text; /gopy <text>: keep it at once."""
    account = request.actor.account
    try:
        if request.args:
            item = await ui.service.feedback.submit(account, " ".join(request.args))
            return Reply(_sent(item))
        await ui.service.feedback.can_send(account)
    except ContestError as exc:
        return Reply(_say(exc))
    return _ask_text(
        "<b>💬 GÓP Ý, HỎI ĐÁP GỬI BAN TỔ CHỨC</b>\n"
        f"Nếu góp ý về một câu hỏi trong bài thi, hãy bấm “{BTN_FEEDBACK}” dưới kết quả bài "
        "thi (gõ /ketqua để xem) để chọn đúng câu hỏi.",
        {"since": _stamp(ui)},
    )


@CONSOLE.action("fb", role=Role.CONTESTANT, writes=True)
async def pick_question(ui: Ui, request: Request) -> Reply:
    """The button under a result: which question of that attempt?"""
    attempt_id = _int_arg(request, 0)
    if attempt_id is None:
        return Reply(alert=texts.error("bad_button"), cancel_input=False)
    try:
        await ui.service.feedback.can_send(request.actor.account)
        attempt = await ui.service.feedback.attempt_questions(request.actor.account, attempt_id)
    except ContestError as exc:
        return Reply(_say(exc), new_message=True)
    lines = [
        f"<b>💬 GÓP Ý VỀ BÀI THI</b> — lần thi {attempt.number}",
        "Bạn muốn góp ý về câu hỏi nào? Bấm số thứ tự của câu, hoặc “Góp ý chung về bài thi”.",
        "",
    ]
    lines += [f"{q.position + 1}. {h(_short(q.text, 80))}" for q in attempt.questions]
    numbers = [
        Choice(str(q.position + 1), action("fbq", attempt.attempt_id, q.position))
        for q in attempt.questions
    ]
    rows = [numbers[i : i + QUESTION_ROW] for i in range(0, len(numbers), QUESTION_ROW)]
    rows.append([Choice("📝 Góp ý chung về bài thi", action("fbq", attempt.attempt_id, "g"))])
    rows.append([Choice(BTN_CANCEL, action("fbx"))])
    return Reply("\n".join(lines), Menu.of(*rows), new_message=True)


@CONSOLE.action("fbq", role=Role.CONTESTANT, writes=True)
async def question_chosen(ui: Ui, request: Request) -> Reply:
    """A question picked (or the attempt as a whole): now the text."""
    attempt_id = _int_arg(request, 0)
    general = len(request.args) > 1 and request.args[1] == "g"
    position = None if general else _int_arg(request, 1)
    if attempt_id is None or (position is None and not general):
        return Reply(alert=texts.error("bad_button"), cancel_input=False)
    try:
        await ui.service.feedback.can_send(request.actor.account)
        attempt = await ui.service.feedback.attempt_questions(request.actor.account, attempt_id)
    except ContestError as exc:
        return Reply(_say(exc))
    data: dict[str, object] = {"attempt_id": attempt_id, "since": _stamp(ui)}
    if general:
        return _ask_text(
            f"<b>💬 Góp ý chung về lần thi {attempt.number}</b>", {**data, "position": None}
        )
    chosen = next((q for q in attempt.questions if q.position == position), None)
    if chosen is None:
        return Reply(_say(ContestError("feedback_question_unknown")))
    lines = [
        f"<b>💬 Góp ý về câu {chosen.position + 1}</b> (lần thi {attempt.number}):",
        f"<i>{h(chosen.text)}</i>",
    ]
    lines += [f"{label}. {h(option)}" for label, option in zip(LABELS, chosen.options, strict=True)]
    if chosen.choice is not None:
        lines.append(f"Bạn đã chọn: {LABELS[chosen.choice]}.")
    return _ask_text("\n".join(lines), {**data, "position": chosen.position})


@CONSOLE.action("fbx", role=Role.CONTESTANT, writes=True)
async def cancel_feedback(ui: Ui, request: Request) -> Reply:
    return Reply("Đã hủy, chưa có góp ý nào được gửi. Gõ /gopy khi bạn muốn góp ý.")


@CONSOLE.input("feedback", role=Role.CONTESTANT, writes=True)
async def feedback_text(ui: Ui, request: Request) -> Reply:
    """The text /gopy (or the question picker) asked for."""
    if _stale(ui, request):
        minutes = int(INPUT_WAIT.total_seconds() // 60)
        return Reply(
            f"Yêu cầu góp ý đã quá {minutes} phút nên đã được hủy; tin nhắn vừa rồi chưa được "
            "gửi đến Ban Tổ chức. Gõ /gopy nếu bạn muốn gửi góp ý."
        )
    attempt_id = request.data.get("attempt_id")
    position = request.data.get("position")
    try:
        item = await ui.service.feedback.submit(
            request.actor.account,
            request.text or "",
            attempt_id=attempt_id if isinstance(attempt_id, int) else None,
            position=position if isinstance(position, int) else None,
        )
    except ContestError as exc:
        if exc.code in _RETYPE:  # ask again, for the same question
            return Reply(_say(exc), _cancel_menu(), expect=Expect("feedback", request.data))
        return Reply(_say(exc))
    return Reply(_sent(item))


# ------------------------------------------------------------------ organisers

ORDER_NAMES = {"o": "cũ nhất trước", "n": "mới nhất trước"}


def _question_lines(question: AttemptQuestion, *, full: bool) -> list[str]:
    key = question.key
    choice = question.choice
    if not full:
        lines = [f"   <i>{h(_short(question.text, 140))}</i>"]
        if key is not None:
            lines.append(f"   Đáp án đúng: {LABELS[key]}. {h(_short(question.options[key], 80))}")
        chose = f"{LABELS[choice]}" if choice is not None else "chưa trả lời"
        lines.append(f"   Thí sinh chọn: {chose}")
        return lines
    lines = [f"<i>{h(question.topic)}</i>", f"<b>{h(question.text)}</b>"]
    for index, (label, option) in enumerate(zip(LABELS, question.options, strict=True)):
        mark = " ✅ (đáp án đúng)" if index == key else ""
        lines.append(f"{label}. {h(option)}{mark}")
    lines.append(
        f"Thí sinh đã chọn: {LABELS[choice]}." if choice is not None else "Thí sinh chưa trả lời."
    )
    return lines


def _about(view: FeedbackView) -> str:
    item = view.item
    if item.attempt_id is None:
        return "góp ý chung"
    number = f"lần thi {view.attempt_number}" if view.attempt_number else "một lần thi"
    if item.position is None:
        return f"{number} (không chọn câu cụ thể)"
    return f"{number}, câu {item.position + 1}"


def _who(view: FeedbackView) -> str:
    name = h(view.person.full_name) if view.person else "(không rõ)"
    place = f" ({h(view.place)})" if view.place else ""
    return f"<b>{name}</b>{place}"


def _entry(view: FeedbackView) -> str:
    item = view.item
    lines = [
        f"<b>#{item.id}</b> · {to_local(item.created_at):%H:%M %d/%m} · {_who(view)}",
        f"📝 Về: {_about(view)}",
    ]
    if view.question is not None:
        lines += _question_lines(view.question, full=False)
    text = _short(item.text, LIST_TEXT)
    more = f" (gõ /phanhoi {item.id} để xem đủ)" if text != " ".join(item.text.split()) else ""
    lines.append(f"💬 “{h(text)}”{more}")
    return "\n".join(lines)


def _page_menu(found: FeedbackPage) -> Menu:
    order = "n" if found.newest_first else "o"
    rows = [
        [
            Choice(f"✍️ Trả lời #{v.item.id}", action("fba", v.item.id)),
            Choice(f"✔️ Đóng #{v.item.id}", action("fbc", v.item.id, found.page, order)),
        ]
        for v in found.views
    ]
    nav = []
    if found.page > 0:
        nav.append(Choice("◀️ Trang trước", action("fbl", found.page - 1, order)))
    if found.page + 1 < found.pages:
        nav.append(Choice("Trang sau ▶️", action("fbl", found.page + 1, order)))
    rows.append(nav)
    other = "o" if found.newest_first else "n"
    rows.append([Choice(f"↕️ Xem {ORDER_NAMES[other]}", action("fbl", 0, other))])
    return Menu.of(*rows)


def _page_reply(found: FeedbackPage, note: str | None = None) -> Reply:
    order = "n" if found.newest_first else "o"
    lines = [note, ""] if note else []
    lines.append(
        f"<b>📬 GÓP Ý CỦA THÍ SINH</b> — {_num(found.total)} góp ý chưa xử lý · trang "
        f"{found.page + 1}/{found.pages} · {ORDER_NAMES[order]}"
    )
    if not found.views:
        lines += ["", "Không có góp ý nào đang chờ xử lý."]
    for view in found.views:
        lines += ["", _entry(view)]
    if found.views:
        lines += [
            "",
            "Bấm “Trả lời” để gõ câu trả lời gửi thí sinh (góp ý được đóng sau khi trả lời), "
            "hoặc “Đóng” để đóng góp ý không cần trả lời.",
        ]
    return Reply("\n".join(lines), _page_menu(found) if found.views or found.page else None)


def _item_reply(view: FeedbackView) -> Reply:
    item = view.item
    person = view.person
    lines = [
        f"<b>📬 GÓP Ý #{item.id}</b> — {STATUS_NAMES.get(item.status, item.status)}",
        f"Thí sinh: {_who(view)}" + (f" · {h(person.phone)}" if person else ""),
        f"Gửi lúc: {texts.fmt_dt(item.created_at)}",
        f"Về: {_about(view)}",
    ]
    if view.question is not None:
        lines += ["", *_question_lines(view.question, full=True)]
    answered = item.status == ANSWERED and item.answer
    # Both at their longest would not fit in one message: each is cut, whole in the export.
    limit = ANSWERED_TEXT if answered else TEXT_MAX
    lines += ["", "<b>Nội dung góp ý:</b>", h(_cut(item.text, limit))]
    if answered and item.answer:
        when = texts.fmt_dt(item.answered_at) if item.answered_at else ""
        by = h(item.answered_by or "")
        lines += ["", f"<b>Đã trả lời</b> ({by}, {when}):", h(_cut(item.answer, limit))]
    elif item.status == CLOSED and item.closed_at:
        lines += ["", f"Đã đóng không trả lời lúc {texts.fmt_dt(item.closed_at)}."]
    menu = None
    if item.status == OPEN:
        menu = Menu.of(
            [
                Choice("✍️ Trả lời", action("fba", item.id)),
                Choice("✔️ Đóng, không trả lời", action("fbc", item.id)),
            ],
            [Choice("📬 Danh sách góp ý", action("fbl", 0, "o"))],
        )
    return Reply("\n".join(lines), menu)


@CONSOLE.command(
    "phanhoi",
    role=Role.ORGANISER,
    help="Góp ý của thí sinh: xem, trả lời, đóng (/phanhoi moi: mới nhất trước)",
)
async def feedback_list(ui: Ui, request: Request) -> Reply:
    """/phanhoi [moi|cu] the open items; /phanhoi <mã số> one item in full."""
    first = request.args[0].lstrip("#").lower() if request.args else ""
    if first.isdigit():
        return _item_reply(await ui.service.feedback.view(int(first)))
    found = await ui.service.feedback.open_page(0, newest_first=first in ("moi", "mới"))
    return _page_reply(found)


@CONSOLE.action("fbl", role=Role.ORGANISER)
async def feedback_page(ui: Ui, request: Request) -> Reply:
    page = _int_arg(request, 0) or 0
    newest = len(request.args) > 1 and request.args[1] == "n"
    return _page_reply(await ui.service.feedback.open_page(page, newest_first=newest))


@CONSOLE.action("fba", role=Role.ORGANISER)
async def ask_answer(ui: Ui, request: Request) -> Reply:
    """«Trả lời»: the item in full, and the answer asked for (in a new message: the list
    stays as it is)."""
    feedback_id = _int_arg(request, 0)
    if feedback_id is None:
        return Reply(alert=texts.error("bad_button"), cancel_input=False)
    view = await ui.service.feedback.view(feedback_id)
    if view.item.status != OPEN:
        raise ContestError("feedback_not_open", id=feedback_id)
    shown = _item_reply(view)
    return Reply(
        shown.text + "\n\n"
        f"✍️ <b>Gõ câu trả lời cho thí sinh</b> trong một tin nhắn (tối đa {_num(TEXT_MAX)} "
        "ký tự). Câu trả lời được gửi cho thí sinh và góp ý được đóng.",
        Menu.of([Choice(BTN_CANCEL, action("fbn", feedback_id))]),
        new_message=True,
        expect=Expect("fb_answer", {"id": feedback_id, "since": _stamp(ui)}),
    )


@CONSOLE.action("fbn", role=Role.ORGANISER)
async def cancel_answer(ui: Ui, request: Request) -> Reply:
    feedback_id = _int_arg(request, 0)
    return Reply(f"Đã hủy, chưa gửi câu trả lời nào cho góp ý #{feedback_id or ''}.")


@CONSOLE.input("fb_answer", role=Role.ORGANISER, writes=True)
async def answer_text(ui: Ui, request: Request) -> Reply:
    """The answer typed after «Trả lời»: sent to the contestant, the item closed."""
    feedback_id = request.data.get("id")
    if not isinstance(feedback_id, int):
        return Reply(texts.error("bad_button"))
    if _stale(ui, request):
        minutes = int(INPUT_WAIT.total_seconds() // 60)
        return Reply(
            f"Yêu cầu trả lời góp ý #{feedback_id} đã quá {minutes} phút nên đã được hủy; tin "
            f"nhắn vừa rồi chưa được gửi cho thí sinh. Gõ /phanhoi {feedback_id} rồi bấm "
            "“Trả lời” để trả lời."
        )
    try:
        view = await ui.service.feedback.answer(request.actor, feedback_id, request.text or "")
    except ContestError as exc:
        if exc.code in _RETYPE:
            menu = Menu.of([Choice(BTN_CANCEL, action("fbn", feedback_id))])
            return Reply(_say(exc), menu, expect=Expect("fb_answer", request.data))
        # Answered or closed meanwhile (by another organiser): no more text goes there.
        await ui.cancel_input(request.actor.account)
        raise
    who = h(view.person.full_name) if view.person else "thí sinh"
    return Reply(
        f"✅ Đã gửi câu trả lời cho {who} và đóng góp ý #{feedback_id}.",
        Menu.of([Choice("📬 Các góp ý còn lại", action("fbl", 0, "o"))]),
    )


@CONSOLE.action("fbc", role=Role.ORGANISER, writes=True)
async def close_item(ui: Ui, request: Request) -> Reply:
    """«Đóng»: closed without an answer; the list (or the item) shown again in place."""
    feedback_id = _int_arg(request, 0)
    if feedback_id is None:
        return Reply(alert=texts.error("bad_button"), cancel_input=False)
    view = await ui.service.feedback.close(request.actor, feedback_id)
    note = f"✔️ Đã đóng góp ý #{feedback_id} của {_who(view)}, không trả lời."
    if len(request.args) < 3:  # pressed under the item itself
        shown = _item_reply(view)
        return Reply(note + "\n\n" + shown.text, shown.menu)
    page = _int_arg(request, 1) or 0
    found = await ui.service.feedback.open_page(page, newest_first=request.args[2] == "n")
    return _page_reply(found, note)


# ------------------------------------------------------------------ the answer's notice


@notice(FEEDBACK_ANSWER_NOTIFICATION)
async def feedback_answer(service: ContestService, note: Notification) -> Notice | None:
    view = await service.feedback.answered(int(note.payload["feedback_id"]))
    if view is None or view.item.answer is None:
        return None
    item, answer = view.item, view.item.answer
    about = "" if item.attempt_id is None else f", về {_about(view)}"
    return Notice(
        f"<b>📬 Ban Tổ chức trả lời góp ý #{item.id} của bạn</b>\n"
        f"Góp ý gửi lúc {texts.fmt_dt(item.created_at)}{about}: "
        f"<i>“{h(_short(item.text, 300))}”</i>\n\n"
        f"{h(answer)}"
    )
