"""/guitin: a message from the organisers to a segment of contestants. Choose the segment
(buttons; one unit by its code, typed or picked), type the message, see it exactly as the
contestants will, with the recipient count, then confirm or cancel. The notices of kind
``broadcast`` (the message itself) and ``broadcast_report`` (the closing report to the
organiser), and the progress message's text, are here too."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contest.errors import ContestError
from contest.model import Role, Unit, UnitKind
from contest.ports import Audience, Broadcast, BroadcastCounts, Notification, Segment, SegmentKind
from contest.ui import texts
from contest.ui.markup import h
from contest.ui.notices import Notice, notice
from contest.ui.reply import Choice, Expect, Menu, Reply
from contest.ui.router import CONSOLE, Request, Ui, action
from contest.usecases.broadcasts import (
    BROADCAST_NOTIFICATION,
    BROADCAST_REPORT,
    DRAFT_VALID_FOR,
    MAX_TEXT_LENGTH,
)

if TYPE_CHECKING:
    from contest.services import ContestService

UNITS_PAGE_SIZE = 8
NOTICE_HEADER = "📣 <b>THÔNG BÁO CỦA BAN TỔ CHỨC CUỘC THI</b>"

texts.ERRORS.update(
    {
        "broadcast_empty": "Nội dung tin nhắn đang trống. Vui lòng gõ nội dung cần gửi.",
        "broadcast_too_long": "Tin nhắn dài {length} ký tự, vượt quá {limit} ký tự cho phép. "
        "Vui lòng rút gọn rồi gõ lại.",
        "broadcast_unknown": "Không tìm thấy tin nhắn này.",
        "broadcast_already_sent": "Tin nhắn này đã được xác nhận gửi trước đó; không gửi lại.",
        "broadcast_cancelled": "Tin nhắn này đã bị hủy; không gửi được nữa. Gõ /guitin để "
        "soạn tin mới.",
        "broadcast_not_yours": "Chỉ người soạn tin nhắn này mới xác nhận hoặc hủy được.",
        "broadcast_stale": "Bản xem trước đã quá hạn (số người nhận có thể đã thay đổi). Gõ "
        "/guitin để soạn lại.",
        "bad_segment": "Nhóm người nhận không hợp lệ. Gõ /guitin để chọn lại.",
    }
)


def fmt_count(value: int) -> str:
    """1200 -> "1.200"."""
    return f"{value:,}".replace(",", ".")


def notice_text(text: str) -> str:
    """A broadcast as contestants see it: the organisers' header, then their words as
    plain text (escaped: no markup of theirs reaches the message)."""
    return f"{NOTICE_HEADER}\n\n{h(text)}"


def segment_label(segment: Segment, unit: Unit | None = None) -> str:
    """Who a segment names, in words (markup)."""
    kind = segment.kind
    if kind is SegmentKind.ALL:
        return "tất cả thí sinh đã đăng ký"
    if kind is SegmentKind.NO_ATTEMPT:
        return "thí sinh đã đăng ký nhưng chưa thi lần nào"
    if kind is SegmentKind.ONE_LEFT:
        return "thí sinh còn 1 lượt thi vòng 1"
    if kind is SegmentKind.UNIT_KIND and segment.unit_kind is not None:
        return f"cán bộ, công chức khối {h(texts.KIND_NAMES[segment.unit_kind])}"
    if kind is SegmentKind.UNIT:
        name = h(unit.name) if unit is not None else f"đơn vị #{segment.unit_id}"
        return f"cán bộ, công chức của {name}"
    return "đầu mối các đơn vị"


def _segment_args(segment: Segment) -> list[object]:
    args: list[object] = [segment.kind.value]
    if segment.unit_kind is not None:
        args.append(segment.unit_kind.value)
    if segment.unit_id is not None:
        args.append(segment.unit_id)
    return args


def _segment_of(args: tuple[str, ...] | list[str]) -> Segment:
    """A segment from an action's arguments (forged ones refused)."""
    try:
        kind = SegmentKind(args[0])
        if kind is SegmentKind.UNIT_KIND:
            return Segment(kind, unit_kind=UnitKind(args[1]))
        if kind is SegmentKind.UNIT:
            return Segment(kind, unit_id=int(args[1]))
    except (IndexError, ValueError):
        raise ContestError("bad_segment") from None
    return Segment(kind)


def _segment_data(segment: Segment) -> dict[str, object]:
    return {"segment": [str(a) for a in _segment_args(segment)]}


def _id_arg(request: Request) -> int:
    if not request.args or not request.args[0].isdigit():
        raise ContestError("broadcast_unknown")
    return int(request.args[0])


CANCEL = Choice("✖️ Thôi, không gửi", action("bc_stop"))


@CONSOLE.command(
    "guitin", role=Role.ORGANISER, help="Gửi tin nhắn tới một nhóm thí sinh (xem trước, xác nhận)"
)
async def start(ui: Ui, request: Request) -> Reply:
    """The segments to choose from."""
    rows = [
        [Choice("👥 Tất cả thí sinh đã đăng ký", action("bc_seg", SegmentKind.ALL.value))],
        [Choice("📝 Đã đăng ký, chưa thi", action("bc_seg", SegmentKind.NO_ATTEMPT.value))],
        [Choice("⏳ Còn 1 lượt thi vòng 1", action("bc_seg", SegmentKind.ONE_LEFT.value))],
        [Choice("🏢 Một khối đơn vị", action("bc_kinds"))],
        [Choice("🏛 Một đơn vị", action("bc_unit"))],
        [Choice("📌 Các đầu mối đơn vị", action("bc_seg", SegmentKind.FOCAL.value))],
        [CANCEL],
    ]
    return Reply(
        "<b>📣 GỬI TIN NHẮN</b>\n\nBước 1/3. Chọn nhóm người nhận. Người đã chặn bot và "
        "người bị khóa không nhận tin.",
        Menu.of(*rows),
    )


@CONSOLE.action("bc_stop", role=Role.ORGANISER)
async def stop(ui: Ui, request: Request) -> Reply:
    return Reply("Đã dừng soạn tin nhắn. Không có gì được gửi.")


@CONSOLE.action("bc_kinds", role=Role.ORGANISER)
async def kinds(ui: Ui, request: Request) -> Reply:
    rows = [
        [Choice(name, action("bc_seg", SegmentKind.UNIT_KIND.value, kind.value))]
        for kind, name in texts.KIND_NAMES.items()
    ]
    return Reply("Chọn khối đơn vị nhận tin nhắn:", Menu.of(*rows, [CANCEL]))


@CONSOLE.action("bc_unit", role=Role.ORGANISER)
async def unit_prompt(ui: Ui, request: Request) -> Reply:
    """One unit: type its code, or pick its kind, then the unit."""
    rows = [
        [Choice(name, action("bc_units", kind.value, 0))] for kind, name in texts.KIND_NAMES.items()
    ]
    return Reply(
        "Gõ <b>mã đơn vị</b> (ví dụ P-CATLINH), hoặc chọn khối rồi chọn đơn vị:",
        Menu.of(*rows, [CANCEL]),
        expect=Expect("broadcast_unit"),
    )


@CONSOLE.action("bc_units", role=Role.ORGANISER)
async def unit_page(ui: Ui, request: Request) -> Reply:
    try:
        kind = UnitKind(request.args[0])
        page = int(request.args[1]) if len(request.args) > 1 else 0
    except (IndexError, ValueError):
        raise ContestError("bad_segment") from None
    async with ui.service.uow(write=False) as uow:
        found = await uow.units.page(kind, page, UNITS_PAGE_SIZE, None)
    rows = [
        [Choice(unit.name[:60], action("bc_seg", SegmentKind.UNIT.value, unit.id))]
        for unit in found.units
    ]
    nav = []
    if found.page > 0:
        nav.append(Choice("◀️ Trang trước", action("bc_units", kind.value, found.page - 1)))
    if found.page + 1 < found.pages:
        nav.append(Choice("Trang sau ▶️", action("bc_units", kind.value, found.page + 1)))
    return Reply(
        f"Chọn đơn vị ({h(texts.KIND_NAMES[kind])}, trang {found.page + 1}/{found.pages}), "
        "hoặc gõ mã đơn vị:",
        Menu.of(*rows, nav, [CANCEL]),
        expect=Expect("broadcast_unit"),
    )


@CONSOLE.input("broadcast_unit", role=Role.ORGANISER)
async def unit_typed(ui: Ui, request: Request) -> Reply:
    unit = await ui.service.broadcasts.unit_by_code(request.text or "")
    return await _ask_text(ui, Segment(SegmentKind.UNIT, unit_id=unit.id))


@CONSOLE.action("bc_seg", role=Role.ORGANISER)
async def segment_chosen(ui: Ui, request: Request) -> Reply:
    return await _ask_text(ui, _segment_of(request.args))


async def _ask_text(ui: Ui, segment: Segment) -> Reply:
    """Step 2: the message, for a segment (whose size is said now)."""
    found = await ui.service.broadcasts.audience(segment)
    unit = await ui.service.broadcasts.unit(segment.unit_id) if segment.unit_id else None
    return Reply(
        f"Nhóm người nhận: <b>{segment_label(segment, unit)}</b> — hiện có "
        f"{fmt_count(found.recipients)} người.{_left_out(found)}\n\n"
        f"Bước 2/3. Gõ <b>nội dung tin nhắn</b> (tối đa {fmt_count(MAX_TEXT_LENGTH)} ký tự, "
        "gửi nguyên văn dưới dạng văn bản thường). Bạn sẽ xem trước rồi mới xác nhận gửi.",
        Menu.of([CANCEL]),
        expect=Expect("broadcast_text", _segment_data(segment)),
    )


def _left_out(found: Audience) -> str:
    parts = []
    if found.unreachable:
        parts.append(f"{fmt_count(found.unreachable)} người đã chặn bot")
    if found.locked:
        parts.append(f"{fmt_count(found.locked)} người bị khóa")
    return f" (không gửi cho {' và '.join(parts)})" if parts else ""


@CONSOLE.input("broadcast_text", role=Role.ORGANISER, writes=True)
async def text_typed(ui: Ui, request: Request) -> Reply:
    """Step 3: the preview, as contestants will see it, with the recipient count."""
    carried = request.data.get("segment")
    segment = _segment_of([str(a) for a in carried] if isinstance(carried, list) else [])
    # A refusal (empty, too long) keeps the input awaited: the organiser types again.
    preview = await ui.service.broadcasts.draft(request.actor, segment, request.text or "")
    broadcast = preview.broadcast
    minutes = int(DRAFT_VALID_FOR.total_seconds() // 60)
    text = (
        "<b>Bước 3/3. XEM TRƯỚC</b> — thí sinh sẽ nhận đúng như sau:\n"
        "────────────\n"
        f"{notice_text(broadcast.text)}\n"
        "────────────\n"
        f"Nhóm người nhận: <b>{segment_label(segment, preview.unit)}</b>\n"
        f"<b>Sẽ gửi tới {fmt_count(preview.audience.recipients)} người</b>"
        f"{_left_out(preview.audience)}.\n\n"
        f"Bấm «Xác nhận gửi» trong vòng {minutes} phút. Tin nhắn được gửi dần theo giới hạn "
        "của Telegram (khoảng 30 tin mỗi giây), sau kết quả thi và cảnh báo giờ thi."
    )
    menu = Menu.of(
        [Choice("✅ Xác nhận gửi", action("bc_ok", broadcast.id))],
        [Choice("✏️ Soạn lại", action("bc_redo", broadcast.id))],
        [Choice("✖️ Hủy", action("bc_no", broadcast.id))],
    )
    return Reply(text, menu)


@CONSOLE.action("bc_ok", role=Role.ORGANISER, writes=True)
async def confirm(ui: Ui, request: Request) -> Reply:
    broadcast = await ui.service.broadcasts.confirm(request.actor, _id_arg(request))
    return Reply(
        f"✅ Đã xác nhận tin nhắn #{broadcast.id}: đang gửi tới "
        f"<b>{fmt_count(broadcast.total)} người</b>. Tiến độ được cập nhật trong một tin nhắn "
        "bên dưới; gửi xong, bạn sẽ nhận báo cáo.",
        alert="Đã xác nhận gửi.",
    )


@CONSOLE.action("bc_no", role=Role.ORGANISER, writes=True)
async def cancel(ui: Ui, request: Request) -> Reply:
    broadcast_id = _id_arg(request)
    await ui.service.broadcasts.cancel(request.actor, broadcast_id)
    return Reply(f"Đã hủy tin nhắn #{broadcast_id}. Không có gì được gửi.")


@CONSOLE.action("bc_redo", role=Role.ORGANISER, writes=True)
async def redo(ui: Ui, request: Request) -> Reply:
    """Write the message again, for the same segment (the draft is cancelled)."""
    broadcast_id = _id_arg(request)
    found = await ui.service.broadcasts.get(broadcast_id)
    if found is None:
        raise ContestError("broadcast_unknown")
    await ui.service.broadcasts.cancel(request.actor, broadcast_id)
    return await _ask_text(ui, found[0].segment)


# ---------------------------------------------------------------- progress and notices


def progress_text(broadcast: Broadcast, counts: BroadcastCounts, *, finished: bool) -> str:
    state = "Đã gửi xong" if finished else "Đang gửi"
    return (
        f"📣 Tin nhắn #{broadcast.id} — {state}: đã gửi {fmt_count(counts.delivered)}/"
        f"{fmt_count(broadcast.total)} · chặn bot {fmt_count(counts.blocked)} · "
        f"lỗi {fmt_count(counts.failed)}"
    )


def report_text(
    broadcast: Broadcast, unit: Unit | None, delivered: int, blocked: int, failed: int
) -> str:
    lines = [
        f"📊 <b>BÁO CÁO GỬI TIN NHẮN #{broadcast.id}</b>",
        f"Nhóm người nhận: {segment_label(broadcast.segment, unit)}",
        f"Tổng số: {fmt_count(broadcast.total)} người",
        f"✅ Đã gửi được: {fmt_count(delivered)}",
        f"🚫 Đã chặn bot: {fmt_count(blocked)} (từ nay không nhận tin nhắn chung, cho tới khi "
        "nhắn lại cho bot)",
        f"⚠️ Lỗi: {fmt_count(failed)} (Telegram từ chối, hoặc quá hạn mà chưa gửi được)",
    ]
    return "\n".join(lines)


@notice(BROADCAST_NOTIFICATION)
async def broadcast_notice(service: ContestService, note: Notification) -> Notice | None:
    """The message itself: its text read once per broadcast, never per recipient."""
    text = await service.broadcasts.text_of(int(note.payload["broadcast_id"]))
    return Notice(notice_text(text)) if text is not None else None


@notice(BROADCAST_REPORT)
async def broadcast_report(service: ContestService, note: Notification) -> Notice | None:
    found = await service.broadcasts.get(int(note.payload["broadcast_id"]))
    if found is None:
        return None
    broadcast, unit = found
    payload = note.payload
    return Notice(
        report_text(
            broadcast,
            unit,
            int(payload.get("delivered", 0)),
            int(payload.get("blocked", 0)),
            int(payload.get("failed", 0)),
        )
    )
