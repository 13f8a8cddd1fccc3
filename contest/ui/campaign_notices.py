"""The campaign's reminders as the person reads them (channel-neutral), checked again at
sending time: someone who took their attempts meanwhile, turned reminders off or was locked
gets nothing, and nothing goes out in the quiet hours (the notice waits until they end)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contest.campaign import Reminder, outside_quiet
from contest.ports import Notification
from contest.rules import ContestRules, to_local
from contest.ui.markup import h
from contest.ui.notices import Notice, notice
from contest.ui.reply import Choice, Menu
from contest.ui.texts import fmt_dt, fmt_window
from contest.usecases.campaign import REMINDER_NOTIFICATION

if TYPE_CHECKING:
    from contest.services import ContestService

EXAM_CHOICE = Choice("📝 Vào thi", "i:exam")
OFF_CHOICE = Choice("🔕 Tắt nhắc nhở", "n:off")
# Reminders that only make sense while the person can still take a round-1 attempt.
_NEEDS_ATTEMPT_LEFT = {Reminder.DAILY, Reminder.ATTEMPT_LEFT, Reminder.LAST_DAY}


def reminder_text(reminder: Reminder, rules: ContestRules, used: int) -> str:
    r1, r2 = rules.round1, rules.round2
    left = max(r1.attempts - used, 0)
    closes = fmt_dt(r1.window.closes)
    if reminder is Reminder.LAUNCH:
        return (
            "📣 <b>Cuộc thi trực tuyến “Tìm hiểu công tác cải cách hành chính trên địa bàn "
            f"quận Đống Đa năm {to_local(r1.window.opens).year}” đã được phát động.</b>\n\n"
            f"Thời gian thi vòng 1: {fmt_window(r1)}. Mỗi lần thi có {r1.questions} câu hỏi, "
            f"làm trong {r1.minutes} phút; mỗi thí sinh được thi {r1.attempts} lần.\n"
            "Gõ /thele để xem thể lệ. Hệ thống sẽ nhắc bạn khi vòng thi mở."
        )
    if reminder is Reminder.ROUND1_OPEN:
        return (
            "🟢 <b>Vòng 1 đã mở!</b>\n\n"
            f"Thời gian thi: {fmt_window(r1)}. Mỗi lần thi có {r1.questions} câu hỏi, làm "
            f"trong {r1.minutes} phút; bạn được thi {r1.attempts} lần, lần có kết quả cao "
            "nhất được công nhận. Bấm “Vào thi” hoặc gõ /thi để bắt đầu."
        )
    if reminder is Reminder.DAILY:
        return (
            "⏰ Bạn đã đăng ký nhưng chưa tham gia thi vòng 1. Vòng 1 kết thúc lúc "
            f"{closes}. Bấm “Vào thi” hoặc gõ /thi để bắt đầu."
        )
    if reminder is Reminder.ATTEMPT_LEFT:
        return (
            f"⏳ Vòng 1 sắp kết thúc (lúc {closes}). Bạn còn <b>{left}</b> lần thi. "
            "Bấm “Vào thi” hoặc gõ /thi để thi tiếp."
        )
    if reminder is Reminder.LAST_DAY:
        return (
            f"🔔 <b>Hôm nay là ngày cuối cùng của vòng 1</b> (kết thúc lúc {closes}). Bạn "
            f"còn <b>{left}</b> lần thi. Bấm “Vào thi” hoặc gõ /thi."
        )
    venue = f" tại {h(r2.venue)}" if r2.venue else ""
    starts = fmt_dt(r2.round.window.opens)
    if reminder is Reminder.ROUND2_DAY_BEFORE:
        return (
            f"📅 <b>Ngày mai diễn ra vòng 2</b>, bắt đầu lúc {starts}{venue}. Vui lòng có mặt "
            "trước giờ thi và mang theo điện thoại đã dùng để đăng ký."
        )
    return (
        f"⏰ <b>Vòng 2 bắt đầu lúc {starts}</b>{venue}, còn khoảng 1 giờ nữa. Ban Tổ chức "
        "sẽ thông báo mã phòng thi tại hội trường."
    )


@notice(REMINDER_NOTIFICATION)
async def reminder(service: ContestService, note: Notification) -> Notice | None:
    if note.person_id is None:
        return None
    standing = await service.campaign.standing(note.person_id)
    if standing is None or not standing.reminders_on or standing.locked:
        return None
    kind = Reminder(str(note.payload["reminder"]))
    rules = service.rules
    if kind in _NEEDS_ATTEMPT_LEFT and (
        standing.in_progress or standing.attempts_used >= rules.round1.attempts
    ):
        return None
    if kind is Reminder.DAILY and standing.attempts_used > 0:
        return None  # it was for those without an attempt
    now = service.clock.now()
    later = outside_quiet(now, rules.reminders)
    if later != now:
        return Notice("", defer_until=later)
    menu = Menu.of(
        [EXAM_CHOICE] if kind in _NEEDS_ATTEMPT_LEFT | {Reminder.ROUND1_OPEN} else [],
        [OFF_CHOICE],
    )
    return Notice(reminder_text(kind, rules, standing.attempts_used), menu)
