"""The notices of qualification and prizes, channel-neutral: the invitation to round 2 (its
date, time and venue only once they are decided: "sẽ thông báo sau" until then), the
final round-1 result with a rank band for everyone else who took part, and the prize."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contest.campaign import outside_quiet
from contest.ports import Notification
from contest.rules import ContestRules
from contest.ui.markup import h
from contest.ui.notices import Notice, notice
from contest.ui.texts import fmt_duration, fmt_money, fmt_range
from contest.usecases.prizes import PRIZE_LABELS, PRIZE_NOTIFICATION
from contest.usecases.rounds import FINAL_NOTIFICATION, INVITE_NOTIFICATION

if TYPE_CHECKING:
    from contest.services import ContestService

LATER = "sẽ thông báo sau"


def fmt_count(value: int) -> str:
    return f"{value:,}".replace(",", ".")


def round2_when_where(rules: ContestRules) -> str:
    """Round 2's date, time and venue, as far as they are decided."""
    r2 = rules.round2
    if not r2.scheduled:
        return f"Thời gian và địa điểm thi vòng 2: {LATER}."
    window = r2.round.window
    venue = h(r2.venue.strip()) if r2.venue.strip() else LATER
    return f"Thời gian thi vòng 2: {fmt_range(window.opens, window.closes)}.\nĐịa điểm: {venue}."


def invite_text(rules: ContestRules, rank: int, correct: int, total: int) -> str:
    r2 = rules.round2.round
    return "\n".join(
        [
            "🎉 <b>Chúc mừng! Bạn có tên trong danh sách thí sinh thi vòng 2.</b>",
            "",
            f"Kết quả vòng 1 của bạn: {correct}/{total} câu đúng, xếp hạng {rank}.",
            round2_when_where(rules),
            f"Vòng 2 thi tập trung: {r2.attempts:02d} lượt làm bài, {r2.questions} câu hỏi, "
            f"làm trong {r2.minutes} phút.",
            "",
            "Tại phòng thi, Ban Tổ chức công bố <b>mã phòng thi</b>. Khi đến giờ, gõ /vong2 "
            "rồi nhập mã để bắt đầu làm bài. Vui lòng mang theo điện thoại có tài khoản đã "
            "dùng để đăng ký.",
        ]
    )


def final_text(rules: ContestRules, payload: dict[str, object]) -> str:
    correct = int(str(payload["correct"]))
    total = int(str(payload["total"]))
    seconds = float(str(payload["seconds"]))
    band = payload["band"]
    assert isinstance(band, list)
    low, high = int(band[0]), int(band[1])
    ranked = int(str(payload["ranked"]))
    r2 = rules.round2
    place = f"trong nhóm hạng {low}–{high}" if low != high else f"{low}"
    lines = [
        "📊 <b>KẾT QUẢ CHUNG CUỘC VÒNG 1</b>",
        "",
        f"Kết quả được công nhận của bạn: <b>{correct}/{total}</b> câu đúng, thời gian làm "
        f"bài {fmt_duration(seconds)}.",
        f"Xếp hạng: {place} trên tổng số {fmt_count(ranked)} thí sinh.",
        "",
        f"Ban Tổ chức đã xác nhận danh sách thí sinh vào vòng 2 ({r2.qualifiers} thí sinh có "
        f"kết quả cao nhất, trả lời đúng từ {round(r2.min_ratio * 100)}% trở lên). Rất tiếc, "
        "bạn không có tên trong danh sách này.",
        "Cảm ơn bạn đã tham gia cuộc thi!",
    ]
    if high <= r2.qualifiers and total and correct / total >= r2.min_ratio:
        lines.insert(
            -2,
            "Bạn đồng hạng với thí sinh cuối cùng của danh sách; theo quy tắc xếp hạng, thí "
            "sinh nộp bài sớm hơn được chọn.",
        )
    elif total and correct / total < r2.min_ratio:
        lines.insert(
            -2,
            f"(Điều kiện vào vòng 2: trả lời đúng từ {round(r2.min_ratio * 100)}% trở lên.)",
        )
    return "\n".join(lines)


def prize_text(rules: ContestRules, payload: dict[str, object]) -> str:
    prize = str(payload["prize"])
    p = rules.prizes
    amount = {
        "first": p.first_amount,
        "second": p.second_amount,
        "third": p.third_amount,
        "consolation": p.consolation_amount,
    }.get(prize, 0)
    worth = f" (trị giá {fmt_money(amount)})" if amount else ""
    return "\n".join(
        [
            f"🏆 <b>Chúc mừng! Bạn đạt {PRIZE_LABELS.get(prize, prize)}</b>{worth} của cuộc thi.",
            "",
            f"Kết quả vòng 2 của bạn: {payload['correct']}/{payload['total']} câu đúng, "
            f"xếp hạng {payload['rank']}.",
            "Ban Tổ chức sẽ liên hệ với bạn qua số điện thoại đã đăng ký để thông báo thời "
            "gian, địa điểm trao giải.",
        ]
    )


def quiet(service: ContestService) -> Notice | None:
    """In the quiet hours, a notice that waits for their end (these are not urgent: an
    organiser confirming at 22:00 wakes nobody); else None."""
    now = service.clock.now()
    later = outside_quiet(now, service.rules.reminders)
    return Notice("", defer_until=later) if later != now else None


@notice(INVITE_NOTIFICATION)
async def invite(service: ContestService, note: Notification) -> Notice | None:
    p = note.payload
    return quiet(service) or Notice(
        invite_text(service.rules, int(p["rank"]), int(p["correct"]), int(p["total"]))
    )


@notice(FINAL_NOTIFICATION)
async def final(service: ContestService, note: Notification) -> Notice | None:
    return quiet(service) or Notice(final_text(service.rules, note.payload))


@notice(PRIZE_NOTIFICATION)
async def prize(service: ContestService, note: Notification) -> Notice | None:
    return quiet(service) or Notice(prize_text(service.rules, note.payload))
