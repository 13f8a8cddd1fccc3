"""/giaithuong: the prizes from round 2's results, previewed (a tie on a prize boundary
shown, with the rule that decided it), confirmed (a tie must be accepted explicitly),
exported to XLSX; the winners are told through the outbox."""

from __future__ import annotations

from contest.errors import ContestError
from contest.model import Role
from contest.round2 import rule_words
from contest.ui import texts
from contest.ui.console.round2 import _fit, _line, _name, tie_text
from contest.ui.console.stats import escaped, when
from contest.ui.reply import Choice, Document, Menu, Reply
from contest.ui.router import CONSOLE, Request, Ui, action
from contest.usecases.prizes import PRIZE_LABELS, Allocation

texts.ERRORS.update(
    {
        "qualifiers_not_confirmed": "Chưa có danh sách vào vòng 2 được xác nhận (gõ "
        "/vongloai), nên chưa xét giải được.",
        "round2_not_over": "Vòng 2 chưa kết thúc (kết thúc lúc {closes}). Giải thưởng được "
        "xét sau khi vòng 2 kết thúc.",
        "round2_attempts_open": "Còn {count} bài thi vòng 2 đang làm dở. Vui lòng chờ các "
        "bài này được nộp rồi gõ /giaithuong lại.",
        "prizes_already_confirmed": "Kết quả giải thưởng đã được xác nhận trước đó; không có "
        "gì thay đổi. Gõ /giaithuong để xem.",
        "prizes_stale": "Kết quả vòng 2 đã thay đổi kể từ khi xem (ví dụ có câu hỏi được sửa "
        "đáp án). Không có gì thay đổi. Gõ /giaithuong để xem lại.",
        "prize_tie_unsettled": "Có thí sinh đồng hạng ở ranh giới giải. Vui lòng xem lại "
        "(/giaithuong) và bấm “✅ Xác nhận, phân định đồng hạng như trên” nếu đồng ý phân "
        "định theo thời điểm nộp bài. Không có gì thay đổi.",
        "no_prizes": "Không có thí sinh nào có kết quả vòng 2; không có giải nào để xác nhận.",
        "prizes_not_confirmed": "Kết quả giải thưởng chưa được xác nhận. Gõ /giaithuong.",
        "export_unavailable": "Chức năng xuất tệp chưa sẵn sàng trên máy chủ này.",
    }
)


def allocation_reply(ui: Ui, allocation: Allocation) -> Reply:
    rule_text = rule_words(allocation.rule)
    labels = allocation.labels
    if allocation.confirmed:
        order = {"first": 0, "second": 1, "third": 2, "consolation": 3}
        rows = sorted(allocation.confirmed, key=lambda c: (order.get(c.prize or "", 9), c.rank))
        lines = [
            "<b>🏆 KẾT QUẢ GIẢI THƯỞNG (đã xác nhận)</b>",
            f"Xác nhận lúc {when(rows[0].confirmed_at)}.",
            "",
        ]
        lines += [
            f"• {PRIZE_LABELS.get(c.prize or '', '')}: {_name(labels, c.person_id)} (hạng {c.rank})"
            for c in rows
        ]
        menu = Menu.of([Choice("📥 Xuất tệp XLSX", action("przx"))])
        return Reply(_fit(lines, []), menu)
    lines = [
        "<b>🏆 GIẢI THƯỞNG (đề xuất, theo kết quả vòng 2)</b>",
        f"Quy tắc xếp hạng: {rule_text}.",
        f"{allocation.ranked} thí sinh có kết quả vòng 2.",
        "",
    ]
    current = None
    for prize, entry in allocation.awarded:
        if prize != current:
            lines.append(f"<b>{PRIZE_LABELS[prize]}</b>")
            current = prize
        lines.append("  " + _line(entry, labels))
    tail: list[str] = []
    for tie in allocation.ties:
        what = f"{PRIZE_LABELS[tie.label]}"
        tail += ["", tie_text(tie, labels, rule_text, f"của {what}")]
    if allocation.absent:
        names = ", ".join(_name(labels, p) for p in allocation.absent)
        tail += ["", f"Không dự thi vòng 2 (không xét giải): {names}."]
    if allocation.locked:
        names = ", ".join(_name(labels, p) for p in allocation.locked)
        tail += ["", f"Tài khoản bị khóa (không xét giải): {names}."]
    if not allocation.awarded:
        return Reply(_fit([*lines, "Chưa có thí sinh nào có kết quả vòng 2."], tail))
    if allocation.ties:
        tail += [
            "",
            "⚠️ Có đồng hạng ở ranh giới giải: hệ thống không tự phân định. Nếu Ban Tổ chức "
            "đồng ý phân định theo thời điểm nộp bài sớm hơn như trên, bấm “✅ Xác nhận, phân "
            "định đồng hạng như trên”; nếu không, hãy thống nhất cách phân định khác trước khi "
            "xác nhận.",
        ]
        confirm = Choice(
            "✅ Xác nhận, phân định đồng hạng như trên",
            action("przok", allocation.digest, 1),
        )
    else:
        confirm = Choice(
            f"✅ Xác nhận {len(allocation.awarded)} giải", action("przok", allocation.digest, 0)
        )
    tail += ["", "Sau khi xác nhận, người đạt giải nhận thông báo qua tin nhắn."]
    menu = Menu.of([confirm], [Choice("🔄 Cập nhật", action("prz"))])
    return Reply(_fit(lines, tail), menu)


@CONSOLE.command(
    "giaithuong", role=Role.ORGANISER, help="Giải thưởng: xem, xác nhận, xuất tệp XLSX"
)
async def prizes(ui: Ui, request: Request) -> Reply:
    try:
        allocation = await ui.service.prizes.preview()
    except ContestError as exc:
        raise escaped(exc) from None
    return allocation_reply(ui, allocation)


@CONSOLE.action("prz", role=Role.ORGANISER)
async def prizes_again(ui: Ui, request: Request) -> Reply:
    return await prizes(ui, request)


@CONSOLE.action("przok", role=Role.ORGANISER, writes=True)
async def confirm(ui: Ui, request: Request) -> Reply:
    if len(request.args) != 2 or request.args[1] not in ("0", "1"):
        raise ContestError("bad_button")
    try:
        done = await ui.service.prizes.confirm(
            request.actor, request.args[0], accept_ties=request.args[1] == "1"
        )
    except ContestError as exc:
        raise escaped(exc) from None
    reply = allocation_reply(ui, done)
    return Reply(
        f"✅ Đã xác nhận {len(done.awarded)} giải; người đạt giải đang được thông báo.\n\n"
        + reply.text,
        reply.menu,
    )


@CONSOLE.action("przx", role=Role.ORGANISER, writes=True)
async def export(ui: Ui, request: Request) -> Reply:
    try:
        data, rows = await ui.service.prizes.workbook(request.actor)
    except ContestError as exc:
        raise escaped(exc) from None
    return Reply(
        f"📥 Danh sách {rows} người đạt giải.",
        document=Document("giai-thuong.xlsx", data, "Danh sách người đạt giải"),
        new_message=True,
    )
