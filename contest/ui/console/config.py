"""/cauhinh: the schedule and the rules in force, as the contest file was loaded, in the
plan's local time."""

from __future__ import annotations

from contest.model import Role
from contest.rules import LOCAL_TZ, ContestRules, RoundRules, Window
from contest.ui.markup import h
from contest.ui.reply import Reply
from contest.ui.router import CONSOLE, Request, Ui
from contest.ui.texts import fmt_dt, fmt_duration, fmt_money, fmt_range


def _percent(ratio: float) -> str:
    return f"{ratio * 100:g}%".replace(".", ",")


def _window(window: Window) -> str:
    span = fmt_range(window.opens, window.closes)
    return f"{span} (mở {fmt_dt(window.opens)}, đóng {fmt_dt(window.closes)})"


def _round(rules: RoundRules) -> str:
    return (
        f"{rules.questions} câu hỏi mỗi lần thi, làm trong {rules.minutes} phút, "
        f"{rules.attempts} lần thi"
    )


def _ties(rules: ContestRules) -> str:
    if rules.uses_prediction:
        return "dự đoán gần đáp án chính thức hơn, rồi thời gian ngắn hơn"
    return "thời gian ngắn hơn"


def _prediction(rules: ContestRules) -> list[str]:
    if not rules.uses_prediction:
        return ['• Xếp hạng khi bằng số câu đúng: thời gian ngắn hơn (tie_break = ["time"]).']
    return [
        "• Xếp hạng khi bằng số câu đúng: dự đoán gần đáp án chính thức hơn, rồi thời gian "
        'ngắn hơn (tie_break = ["prediction", "time"]).',
        f"• Câu hỏi dự đoán: <i>{h(rules.prediction_question)}</i> (đáp án chính thức: "
        "/dapandudoan khi vòng 1 kết thúc).",
    ]


def config_text(rules: ContestRules) -> str:
    r1, r2, prizes, quota = rules.round1, rules.round2, rules.prizes, rules.quota
    warnings = ", ".join(fmt_duration(w.total_seconds()) for w in rules.warn_before)
    venue = h(r2.venue) if r2.venue.strip() else "<i>sẽ thông báo sau</i>"
    lines = [
        "<b>⚙️ CẤU HÌNH CUỘC THI ĐANG ÁP DỤNG</b>",
        f"(theo tệp cấu hình đã nạp; giờ Việt Nam, {LOCAL_TZ.key})",
        "",
        "<b>Phát động</b>",
        f"• {_window(rules.campaign)}",
        "",
        "<b>Vòng 1</b>",
        f"• Thời gian: {_window(r1.window)}",
        f"• {_round(r1)}; lần có nhiều câu đúng nhất được công nhận (bằng nhau: "
        f"{_ties(rules)}, rồi nộp sớm hơn).",
        *_prediction(rules),
        f"• Nhắc giờ khi còn: {warnings or 'không nhắc'}.",
        "",
        "<b>Vòng 2</b>",
        f"• {r2.qualifiers} thí sinh có kết quả cao nhất vòng 1, trả lời đúng từ "
        f"{_percent(r2.min_ratio)} trở lên.",
        f"• Thời gian: {_window(r2.round.window)}"
        + ("" if r2.scheduled else " (<i>chưa chốt</i>: thí sinh thấy “sẽ thông báo sau”)"),
        f"• {_round(r2.round)}.",
        f"• Địa điểm: {venue}",
        "",
        "<b>Giải thưởng</b>",
        f"• Giải Nhất: {prizes.first} giải × {fmt_money(prizes.first_amount)}",
        f"• Giải Nhì: {prizes.second} giải × {fmt_money(prizes.second_amount)}",
        f"• Giải Ba: {prizes.third} giải × {fmt_money(prizes.third_amount)}",
        f"• Giải Khuyến khích: {prizes.consolation} giải × {fmt_money(prizes.consolation_amount)}",
        "",
        "<b>Chỉ tiêu tham gia của mỗi đơn vị</b>",
        f"• Tối thiểu {quota.min_leaders} lãnh đạo đơn vị và {_percent(quota.min_staff_ratio)} "
        "công chức, viên chức của đơn vị.",
        "",
        f"<b>Độ tuổi</b>: công dân từ đủ {rules.min_age} tuổi.",
    ]
    return "\n".join(lines)


@CONSOLE.command("cauhinh", role=Role.ORGANISER, help="Lịch thi và thể lệ đang áp dụng")
async def show(ui: Ui, request: Request) -> Reply:
    return Reply(config_text(ui.service.rules))
