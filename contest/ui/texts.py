"""Every text a person sees, in Vietnamese. User-supplied text is escaped here."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from html import escape

from contest.errors import ImportProblem
from contest.model import AttemptResult, Group, Position, Role, Unit, UnitKind
from contest.ports import UnitPage
from contest.registration import Draft
from contest.rules import ContestRules, RoundRules, to_local
from contest.services import AttemptSummary, ExamCard, PredictionAsk, Profile, ResultsView
from contest.ui.reply import Choice, Menu, Reply

LABELS = ("A", "B", "C")

BTN_RULES = "📜 Thể lệ"
BTN_GUIDE = "❓ Hướng dẫn"
BTN_REGISTER = "📝 Đăng ký dự thi"
BTN_CONSENT = "✅ Tôi đồng ý"
BTN_SHARE_PHONE = "📱 Chia sẻ số điện thoại"
BTN_CIVIL_SERVANT = "🏛 Cán bộ, công chức, viên chức"
BTN_CITIZEN = "👤 Công dân"
BTN_LEADER = "Lãnh đạo đơn vị"
BTN_STAFF = "Công chức, viên chức, người lao động"
BTN_PREV = "◀️ Trang trước"
BTN_NEXT = "Trang sau ▶️"
BTN_CONFIRM = "✅ Xác nhận đăng ký"
BTN_START_EXAM = "▶️ Bắt đầu làm bài"
BTN_EXAM = "📝 Vào thi"

KIND_NAMES = {
    UnitKind.DEPARTMENT: "Phòng, ban chuyên môn, đơn vị sự nghiệp",
    UnitKind.WARD: "UBND phường",
    UnitKind.EDUCATION: "Khối Giáo dục",
}
GROUP_NAMES = {
    Group.CIVIL_SERVANT: "Cán bộ, công chức, viên chức",
    Group.CITIZEN: "Công dân",
}
POSITION_NAMES = {Position.LEADER: BTN_LEADER, Position.STAFF: BTN_STAFF}
EDIT_LABELS = {
    "name": "✏️ Sửa họ tên",
    "birth_date": "✏️ Sửa ngày sinh",
    "phone": "✏️ Sửa số điện thoại",
    "group": "✏️ Sửa đối tượng",
    "unit": "✏️ Sửa đơn vị",
    "position": "✏️ Sửa chức vụ",
    "ward": "✏️ Sửa phường",
}


def h(text: str) -> str:
    """Escape user or bank text for an HTML message (quotes kept as typed)."""
    return escape(text, quote=False)


def fmt_dt(when: datetime) -> str:
    return to_local(when).strftime("%H:%M ngày %d/%m/%Y")


def fmt_date(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def fmt_range(opens: datetime, closes: datetime) -> str:
    """'từ ngày 01/08/2024 đến hết ngày 15/08/2024'; exact times only where they matter."""
    start, end = to_local(opens), to_local(closes)
    first = f"ngày {start:%d/%m/%Y}" if start.time() == time() else fmt_dt(opens)
    if end.time() == time():
        last = f"hết ngày {(end - timedelta(days=1)):%d/%m/%Y}"
    else:
        last = fmt_dt(closes)
    return f"từ {first} đến {last}"


def fmt_window(rules: RoundRules) -> str:
    return fmt_range(rules.window.opens, rules.window.closes)


def fmt_money(amount: int) -> str:
    return f"{amount:,}".replace(",", ".") + " đồng"


def ward_name(unit: Unit) -> str:
    """A citizen lives in "phường Kim Liên", not in its People's Committee."""
    return unit.name[5:] if unit.name.startswith("UBND ") else unit.name


def fmt_duration(seconds: float) -> str:
    total = max(round(seconds), 0)
    minutes, secs = divmod(total, 60)
    if minutes and secs:
        return f"{minutes} phút {secs} giây"
    if minutes:
        return f"{minutes} phút"
    return f"{secs} giây"


def fmt_clock(seconds: float) -> str:
    total = max(int(seconds), 0)
    return f"{total // 60:02d}:{total % 60:02d}"


# ------------------------------------------------------------------ welcome and rules


def welcome(first_name: str, registered: bool, rules: ContestRules) -> str:
    r1 = rules.round1
    lines = [
        f"Xin chào <b>{h(first_name)}</b>!",
        "",
        "Đây là kênh dự thi trên Telegram của Cuộc thi trực tuyến <b>“Tìm hiểu công tác cải "
        "cách hành chính trên địa bàn quận Đống Đa năm "
        f"{to_local(r1.window.opens).year}”</b> do UBND quận Đống Đa tổ chức.",
        "",
        f"• Thời gian thi vòng 1: {fmt_window(r1)}.",
        f"• Mỗi lần thi có {r1.questions} câu hỏi trắc nghiệm, chọn đáp án đúng A, B hoặc C, "
        f"làm trong {r1.minutes} phút.",
        f"• Mỗi thí sinh được thi {r1.attempts} lần; kết quả được công nhận là lần có "
        f"số câu đúng nhiều nhất (nếu bằng nhau, {_attempt_tie(rules)}).",
        f"• {rules.round2.qualifiers} thí sinh có kết quả cao nhất vòng 1 và trả lời đúng "
        f"từ {int(rules.round2.min_ratio * 100)}% trở lên được thi vòng 2.",
        "",
    ]
    if registered:
        lines.append(
            "Bạn đã đăng ký. Gõ /thi để vào thi, /ketqua để xem kết quả, /hoso để xem hồ sơ."
        )
    else:
        lines.append("Để dự thi, bạn cần đăng ký một lần. Bấm “Đăng ký dự thi” để bắt đầu.")
    return "\n".join(lines)


def rules_text(rules: ContestRules) -> str:
    r1, r2, p = rules.round1, rules.round2, rules.prizes
    return "\n".join(
        [
            "<b>📜 THỂ LỆ CUỘC THI</b>",
            "",
            "<b>Đối tượng dự thi</b>",
            "• Bắt buộc: lãnh đạo, công chức, viên chức của các phòng, ban chuyên môn, đơn vị "
            "sự nghiệp, UBND 21 phường và khối Giáo dục. Mỗi đơn vị có tối thiểu "
            f"{rules.quota.min_leaders:02d} lãnh đạo đơn vị và tối thiểu "
            f"{int(rules.quota.min_staff_ratio * 100)}% công chức, viên chức của đơn vị "
            "tham gia.",
            f"• Khuyến khích: công dân Việt Nam từ đủ {rules.min_age} tuổi trở lên đang sinh "
            "sống, công tác, học tập trên địa bàn quận Đống Đa.",
            "",
            "<b>Nội dung thi</b>",
            "• Chủ trương, chính sách của Đảng, Nhà nước và UBND Quận liên quan đến công tác "
            "cải cách hành chính nhà nước.",
            "• Các chỉ số liên quan đến cải cách hành chính của Quận.",
            "",
            "<b>Thời gian</b>",
            f"• Phát động: {fmt_range(rules.campaign.opens, rules.campaign.closes)}.",
            f"• Thi vòng 1: {fmt_window(r1)}.",
            "",
            "<b>Vòng 1</b>",
            "• Mỗi thí sinh dùng 01 tài khoản cá nhân.",
            f"• Mỗi lần thi {r1.questions} câu, trả lời trong {r1.minutes} phút, chọn đáp án "
            "đúng A, B, C. Hết giờ, bài được nộp tự động; câu chưa trả lời tính là sai.",
            f"• Mỗi thí sinh được thi {r1.attempts} lần; hệ thống công nhận lần có số câu "
            f"đúng nhiều nhất, nếu bằng nhau thì {_attempt_tie(rules)}.",
            *_prediction_rule(rules),
            "",
            "<b>Xếp hạng</b>",
            *tie_rule_lines(rules),
            "",
            "<b>Vòng 2</b>",
            f"• {r2.qualifiers} thí sinh có kết quả cao nhất vòng 1, trả lời đúng từ "
            f"{int(r2.min_ratio * 100)}% trở lên, thi trắc nghiệm tập trung"
            + _round2_when_where(rules)
            + "; vòng 2 có "
            f"{r2.round.attempts:02d} lượt làm bài, mỗi lượt {r2.round.questions} câu, làm "
            f"trong {r2.round.minutes} phút.",
            "",
            "<b>Giải thưởng</b>",
            f"• Giải Nhất: {p.first:02d} giải, mỗi giải {fmt_money(p.first_amount)}.",
            f"• Giải Nhì: {p.second:02d} giải, mỗi giải {fmt_money(p.second_amount)}.",
            f"• Giải Ba: {p.third:02d} giải, mỗi giải {fmt_money(p.third_amount)}.",
            f"• Giải Khuyến khích: {p.consolation:02d} giải, mỗi giải "
            f"{fmt_money(p.consolation_amount)}.",
        ]
    )


def _round2_when_where(rules: ContestRules) -> str:
    """Round 2's venue and dates as far as the contest file decides them: a date not yet
    decided (``[round2] scheduled = false``) is never shown as if it were."""
    r2 = rules.round2
    if not r2.scheduled:
        return " (thời gian, địa điểm sẽ thông báo sau)"
    where = f" tại {h(r2.venue)}" if r2.venue.strip() else " (địa điểm sẽ thông báo sau)"
    return where + f" ({fmt_range(r2.round.window.opens, r2.round.window.closes)})"


def _attempt_tie(rules: ContestRules) -> str:
    """Which of a person's equal attempts counts, by the tie rule in force."""
    if rules.uses_prediction:
        return "lần có dự đoán gần con số chính thức hơn, rồi lần có thời gian làm bài ngắn hơn"
    return "lần có thời gian làm bài ngắn hơn"


def _prediction_rule(rules: ContestRules) -> list[str]:
    if not rules.uses_prediction:
        return []
    return [
        "• Câu hỏi dự đoán: sau câu trả lời cuối cùng của mỗi lần thi vòng 1, thí sinh gõ "
        f"một số nguyên để trả lời câu hỏi “{h(rules.prediction_question)}”. Câu dự đoán "
        "phải được trả lời trong thời gian làm bài; hết giờ mà chưa trả lời thì lần thi vẫn "
        "được tính nhưng không có dự đoán. Con số chính thức do Ban Tổ chức công bố khi vòng "
        "1 kết thúc.",
        "• Vòng 2 không có câu hỏi dự đoán: thí sinh bằng số câu đúng thì người có thời gian "
        "làm bài ngắn hơn xếp trên.",
    ]


def tie_rule_lines(rules: ContestRules) -> list[str]:
    """The tie rule in force, in plain Vietnamese (/thele)."""
    if rules.uses_prediction:
        lines = [
            "• Thí sinh có nhiều câu trả lời đúng hơn xếp trên.",
            "• Nếu bằng số câu đúng: thí sinh có dự đoán gần con số chính thức hơn xếp trên "
            "(không có dự đoán thì xếp sau những người có dự đoán).",
            "• Nếu vẫn bằng nhau: thí sinh có thời gian làm bài ngắn hơn xếp trên.",
        ]
    else:
        lines = [
            "• Thí sinh có nhiều câu trả lời đúng hơn xếp trên.",
            "• Nếu bằng số câu đúng: thí sinh có thời gian làm bài ngắn hơn xếp trên.",
        ]
    lines.append(
        "• Nếu vẫn bằng nhau ở mọi tiêu chí trên, các thí sinh đồng hạng (trong danh sách, "
        "bài nộp sớm hơn đứng trước)."
    )
    return lines


def _reminders(rules: ContestRules) -> str:
    """'; hệ thống nhắc khi còn 5 phút và 1 phút' from the rules (nothing if none)."""
    warnings = [fmt_duration(w.total_seconds()) for w in sorted(rules.warn_before, reverse=True)]
    if not warnings:
        return ""
    spoken = warnings[0] if len(warnings) == 1 else ", ".join(warnings[:-1]) + " và " + warnings[-1]
    return f"; hệ thống nhắc khi còn {spoken}"


def guide_text(rules: ContestRules) -> str:
    r1 = rules.round1
    return "\n".join(
        [
            "<b>❓ HƯỚNG DẪN DỰ THI</b>",
            "",
            "1. Bấm “Đăng ký dự thi” (hoặc gõ /dangky) và làm theo từng bước: đồng ý xử lý "
            "dữ liệu cá nhân, nhập họ tên, ngày sinh, chia sẻ số điện thoại của bạn, chọn "
            "đối tượng dự thi, rồi chọn đơn vị công tác và chức vụ (cán bộ, công chức, viên "
            "chức) hoặc phường (công dân).",
            f"2. Mỗi lần thi có {r1.questions} câu, làm trong {r1.minutes} phút; mỗi người được "
            f"thi {r1.attempts} lần. Gõ /thi rồi "
            "bấm “Bắt đầu làm bài”. Các câu hỏi lần lượt hiện trong cùng một tin nhắn; bấm A, B "
            "hoặc C để trả lời. Đáp án đã chọn được lưu ngay, không sửa được.",
            "3. Thời gian vẫn tính khi bạn rời khỏi bài thi; gõ /thi để làm tiếp bài đang dở. "
            "Thời gian còn lại ghi trên mỗi câu hỏi (tính tại lúc câu hiện ra)"
            + _reminders(rules)
            + ".",
            "4. Gõ /ketqua để xem kết quả các lần thi, /hoso để xem hồ sơ đăng ký.",
            "",
            COMMANDS,
            SUPPORT,
        ]
    )


# ------------------------------------------------------------------ registration prompts


SUPPORT = "Nếu cần hỗ trợ, vui lòng liên hệ Ban Tổ chức (Phòng Nội vụ quận Đống Đa)."
COMMANDS = (
    "Các lệnh: /dangky – đăng ký; /thi – vào thi; /ketqua – xem kết quả; /hoso – xem hồ sơ; "
    "/gopy – góp ý, hỏi Ban Tổ chức; /thele – thể lệ; /huongdan – hướng dẫn."
)

CONSENT = (
    "<b>📝 ĐĂNG KÝ DỰ THI</b>\n\n"
    "Để đăng ký, Ban Tổ chức cần thu thập và xử lý các dữ liệu cá nhân sau: họ và tên, "
    "ngày sinh, số điện thoại, đơn vị công tác và chức vụ (đối với cán bộ, công chức, "
    "viên chức) hoặc phường nơi sinh sống, công tác, học tập (đối với công dân).\n\n"
    "Dữ liệu chỉ được dùng để tổ chức cuộc thi, thống kê kết quả theo đơn vị và liên hệ "
    "trao giải; chỉ Ban Tổ chức được xem, theo Nghị định số 13/2023/NĐ-CP ngày 17/4/2023 "
    "của Chính phủ về bảo vệ dữ liệu cá nhân.\n\n"
    "Nếu đồng ý, vui lòng bấm “Tôi đồng ý”. Nếu không đồng ý, bạn không cần làm gì thêm."
)
ASK_NAME = "Bước 1/5. Vui lòng nhập <b>họ và tên</b> đầy đủ của bạn (có dấu), ví dụ: Nguyễn Văn An."
ASK_BIRTH_DATE = (
    "Bước 2/5. Vui lòng nhập <b>ngày sinh</b> theo dạng ngày/tháng/năm, ví dụ: 25/03/1990."
)
ASK_PHONE = (
    "Bước 3/5. Vui lòng bấm nút <b>“Chia sẻ số điện thoại”</b> bên dưới để xác thực số điện "
    "thoại của tài khoản Telegram này. Nếu không thấy nút, hãy bấm biểu tượng bàn phím ⌨️ "
    "cạnh ô nhập tin nhắn."
)
ASK_GROUP = "Bước 4/5. Bạn tham gia với tư cách nào?"
ASK_UNIT_KIND = "Bước 5/5. Đơn vị công tác của bạn thuộc khối nào?"
ASK_POSITION = "Bước 5/5 (tiếp). Vui lòng chọn <b>chức vụ</b> của bạn tại đơn vị:"


def ask_unit(page: UnitPage, *, ward: bool) -> str:
    head = (
        "Bước 5/5. Chọn <b>phường</b> nơi bạn sinh sống, công tác hoặc học tập"
        if ward
        else f"Bước 5/5 (tiếp). Chọn <b>đơn vị</b> công tác của bạn ({KIND_NAMES[page.kind]})"
    )
    lines = [head + f" — trang {page.page + 1}/{page.pages}."]
    if page.query:
        lines.append(f"Kết quả tìm kiếm cho “{h(page.query)}”.")
    if not page.units:
        what = "phường" if ward else "đơn vị"
        lines.append(
            f"Không tìm thấy {what} phù hợp. Vui lòng gõ từ khóa khác, ví dụ một phần tên "
            f"{what}, hoặc bấm “Xem toàn bộ danh sách”."
        )
    else:
        lines.append("Bạn cũng có thể gõ một phần tên để tìm nhanh.")
    return "\n".join(lines)


def summary(draft: Draft, unit: Unit | None, ward: Unit | None) -> str:
    lines = [
        "<b>Vui lòng kiểm tra lại thông tin đăng ký:</b>",
        "",
        f"• Họ và tên: <b>{h(draft.full_name or '')}</b>",
        f"• Ngày sinh: {fmt_date(draft.birth_date) if draft.birth_date else ''}",
        f"• Số điện thoại: {h(draft.phone or '')}",
        f"• Đối tượng: {GROUP_NAMES[draft.group] if draft.group else ''}",
    ]
    if draft.group is Group.CIVIL_SERVANT:
        lines.append(f"• Đơn vị: {h(unit.name) if unit else ''}")
        lines.append(f"• Chức vụ: {POSITION_NAMES[draft.position] if draft.position else ''}")
    elif draft.group is Group.CITIZEN:
        lines.append(f"• Phường: {h(ward_name(ward)) if ward else ''}")
    lines += ["", "Nếu đúng, bấm “Xác nhận đăng ký”. Nếu cần sửa, bấm nút tương ứng."]
    return "\n".join(lines)


def registered(name: str, rules: RoundRules) -> str:
    return (
        f"🎉 <b>{h(name)}</b> đã đăng ký dự thi thành công!\n\n"
        f"Thời gian thi vòng {rules.number}: {fmt_window(rules)}. "
        f"Bấm “{BTN_EXAM}” bên dưới (hoặc gõ /thi) để vào thi, /hoso để xem hồ sơ."
    )


def ask_group(draft: Draft) -> str:
    """The group step, with what was typed so far: a wrong birth year shows before it
    refuses a citizen, and the buttons below correct it."""
    born = fmt_date(draft.birth_date) if draft.birth_date else ""
    return (
        f"{ASK_GROUP}\n\n"
        f"Thông tin đã nhập: <b>{h(draft.full_name or '')}</b>, sinh ngày {born}, "
        f"số điện thoại {h(draft.phone or '')}. Nếu có thông tin chưa đúng, bấm nút “Sửa” "
        "tương ứng (hoặc gõ lại ngày sinh đúng)."
    )


def under_age(born: date, age: int, min_age: int) -> str:
    """A citizen under the age limit: said in the chat, where it stays, with the fixes."""
    return (
        f"⛔ Rất tiếc, cuộc thi dành cho công dân từ đủ {min_age} tuổi trở lên. Theo ngày "
        f"sinh bạn đã nhập (<b>{fmt_date(born)}</b>), bạn mới {age} tuổi.\n\n"
        "• Nếu bạn nhập nhầm ngày sinh, hãy gõ lại ngày sinh đúng (ví dụ: 25/03/1985) hoặc "
        f"bấm “{EDIT_LABELS['birth_date']}”.\n"
        "• Nếu bạn là cán bộ, công chức, viên chức, hãy chọn lại đối tượng bên dưới.\n"
        "• Họ tên, số điện thoại cũng sửa được bằng các nút bên dưới."
    )


def birth_date_corrected(born: date) -> str:
    return f"✅ Đã sửa ngày sinh thành <b>{fmt_date(born)}</b>."


def profile_text(profile: Profile) -> str:
    person = profile.person
    lines = [
        "<b>👤 HỒ SƠ DỰ THI</b>",
        "",
        f"• Họ và tên: <b>{h(person.full_name)}</b>",
        f"• Ngày sinh: {fmt_date(person.birth_date)}",
        f"• Số điện thoại: {h(person.phone)}",
        f"• Đối tượng: {GROUP_NAMES[person.group]}",
    ]
    if person.group is Group.CIVIL_SERVANT:
        lines.append(f"• Đơn vị: {h(profile.unit.name) if profile.unit else ''}")
        lines.append(f"• Chức vụ: {POSITION_NAMES[person.position] if person.position else ''}")
    else:
        lines.append(f"• Phường: {h(ward_name(profile.ward)) if profile.ward else ''}")
    lines.append(f"• Ngày đăng ký: {fmt_dt(person.registered_at)}")
    return "\n".join(lines)


NOT_REGISTERED = "Bạn chưa đăng ký dự thi. Gõ /dangky để đăng ký."
ALREADY_REGISTERED = "Bạn đã đăng ký dự thi. Gõ /hoso để xem hồ sơ, /thi để vào thi."


# ------------------------------------------------------------------ exam


def exam_intro(rules: RoundRules, used: int, best: AttemptResult | None) -> str:
    left = rules.attempts - used
    lines = [
        f"<b>📝 VÒNG {rules.number}</b>",
        "",
        f"• Mỗi lần thi có {rules.questions} câu hỏi, chọn đáp án đúng A, B hoặc C.",
        f"• Thời gian làm bài: {rules.minutes} phút, tính từ khi bấm “Bắt đầu làm bài”. Hết "
        "giờ, bài được nộp tự động; câu chưa trả lời tính là sai.",
        "• Mỗi câu chỉ chọn đáp án một lần, không sửa lại được. Nếu bị gián đoạn, gõ /thi để "
        "làm tiếp (thời gian vẫn tính).",
        f"• Bạn còn <b>{left}/{rules.attempts}</b> lần thi.",
    ]
    if best is not None:
        lines.append(f"• Kết quả được công nhận hiện tại: {best_line(best)}.")
    lines += ["", "Bấm “Bắt đầu làm bài” khi bạn đã sẵn sàng."]
    return "\n".join(lines)


def best_line(result: AttemptResult) -> str:
    return (
        f"{result.correct}/{result.total} câu đúng, thời gian "
        f"{fmt_duration(result.duration_seconds)}"
    )


def account_locked(reason: str | None) -> str:
    """/thi of a person an organiser locked (no new attempt)."""
    lines = [
        "🔒 <b>Tài khoản của bạn đang bị tạm khóa</b> nên chưa thể bắt đầu bài thi. Các lần "
        "thi trong thời gian bị khóa không được tính vào kết quả xếp hạng.",
    ]
    if reason:
        lines.append(f"Lý do: {h(reason)}")
    lines.append("Liên hệ Ban Tổ chức (Phòng Nội vụ quận Đống Đa) nếu bạn cần trao đổi thêm.")
    return "\n".join(lines)


def card(card: ExamCard, rules: RoundRules, now: datetime) -> str:
    left = max((card.deadline_at - now).total_seconds(), 0)
    # Few formatting entities: each one is parsed on every press, twice.
    lines = [
        f"Vòng {rules.number} · Lần thi {card.attempt_number}/{rules.attempts} · "
        f"<b>Câu {card.position + 1}/{card.total}</b> · ⏱ Còn lại {fmt_clock(left)}",
        f"<i>{h(card.topic)}</i>",
        "",
        f"<b>{h(card.text)}</b>",
        "",
    ]
    for label, option in zip(LABELS, card.options, strict=True):
        lines.append(f"{label}. {h(option)}")
    return "\n".join(lines)


def attempt_done(summary: AttemptSummary, *, expired: bool) -> str:
    result = summary.result
    head = (
        "⏰ <b>Đã hết thời gian làm bài.</b> Bài thi đã được nộp tự động; câu chưa trả lời "
        "tính là sai."
        if expired
        else "✅ <b>Bạn đã hoàn thành bài thi.</b>"
    )
    lines = [
        head,
        "",
        f"Lần thi {result.number}: <b>{result.correct}/{result.total}</b> câu đúng, "
        f"thời gian làm bài {fmt_duration(result.duration_seconds)}.",
        f"Kết quả được công nhận: {best_line(summary.best)} (lần thi {summary.best.number}).",
    ]
    if summary.predicting:
        lines.insert(3, prediction_line(result.prediction))
    if summary.attempts_left:
        lines.append(f"Bạn còn {summary.attempts_left} lần thi. Gõ /thi để thi lần tiếp theo.")
    else:
        lines.append("Bạn đã thi đủ số lần cho phép. Gõ /ketqua để xem lại kết quả.")
    return "\n".join(lines)


def fmt_count(value: int) -> str:
    """1234567 -> '1.234.567' (Vietnamese thousands)."""
    return f"{value:,}".replace(",", ".")


def prediction_line(prediction: int | None) -> str:
    if prediction is None:
        return (
            "Câu hỏi dự đoán: <b>không có câu trả lời</b> (đã hết thời gian làm bài); lần thi "
            "vẫn được tính, xếp sau những bài có dự đoán khi bằng số câu đúng."
        )
    return f"Câu hỏi dự đoán: bạn dự đoán <b>{fmt_count(prediction)}</b>."


def prediction_ask(ask: PredictionAsk, now: datetime, *, answered: int | None = None) -> str:
    """The prediction question at the end of an attempt (it replaces the exam card)."""
    left = max((ask.deadline_at - now).total_seconds(), 0)
    lines = []
    if answered is not None:
        lines += [f"✅ Bạn đã trả lời hết {answered} câu hỏi của lần thi này.", ""]
    lines += [
        f"❓ <b>CÂU HỎI DỰ ĐOÁN</b> · ⏱ Còn lại {fmt_clock(left)}",
        "",
        f"<b>{h(ask.question)}</b>",
        "",
        "Vui lòng <b>gõ một số nguyên</b> (ví dụ: 125) rồi gửi. Câu trả lời dùng để xếp hạng "
        "khi có cùng số câu đúng. Cần trả lời trước "
        f"{to_local(ask.deadline_at):%H:%M:%S}; hết giờ mà chưa trả lời thì lần thi vẫn "
        "được tính nhưng không có dự đoán.",
    ]
    return "\n".join(lines)


def prediction_recorded(prediction: int | None) -> str:
    shown = fmt_count(prediction) if prediction is not None else "—"
    return f"❓ Câu hỏi dự đoán: bạn đã trả lời <b>{shown}</b>. Kết quả ở tin nhắn bên dưới."


def card_closed() -> str:
    return "⏰ Bài thi này đã kết thúc. Kết quả được gửi trong tin nhắn bên dưới."


def warning(seconds_left: float) -> str:
    minutes = max(1, math.ceil(seconds_left / 60))
    return (
        f"⏰ Bài thi của bạn còn khoảng <b>{minutes} phút</b>. Vui lòng hoàn thành bài thi "
        "trước khi hết giờ."
    )


def round_not_open(rules: RoundRules) -> str:
    return (
        f"Vòng {rules.number} chưa mở. Thời gian thi: {fmt_window(rules)}. "
        "Vui lòng quay lại khi vòng thi mở."
    )


def round_closed(rules: RoundRules) -> str:
    return (
        f"Vòng {rules.number} đã kết thúc (thời gian thi: {fmt_window(rules)}). "
        "Gõ /ketqua để xem kết quả."
    )


def no_attempts_left(rules: RoundRules, best: AttemptResult | None) -> str:
    text = f"Bạn đã thi đủ {rules.attempts} lần của vòng {rules.number}."
    if best is not None:
        text += f"\nKết quả được công nhận: {best_line(best)} (lần thi {best.number})."
    return text


def results_text(view: ResultsView, rules: RoundRules) -> str:
    if not view.results:
        text = f"Bạn chưa có lần thi nào hoàn thành ở vòng {rules.number}."
        if view.in_progress:
            text += " Bạn đang có một bài thi dở dang: gõ /thi để làm tiếp."
        else:
            text += " Gõ /thi để vào thi."
        return text
    lines = [f"<b>📊 KẾT QUẢ VÒNG {rules.number}</b>", ""]
    for result in view.results:
        mark = " ⭐" if view.best and result.attempt_id == view.best.attempt_id else ""
        how = " (nộp tự động khi hết giờ)" if result.status.value == "expired" else ""
        guess = ""
        if view.predicting:
            guess = (
                f", dự đoán {fmt_count(result.prediction)}"
                if result.prediction is not None
                else ", không có dự đoán"
            )
        lines.append(
            f"• Lần thi {result.number}: {result.correct}/{result.total} câu đúng, thời gian "
            f"làm bài {fmt_duration(result.duration_seconds)}{how}{guess}, nộp lúc "
            f"{fmt_dt(result.finished_at)}{mark}"
        )
    if view.best is not None:
        lines += [
            "",
            f"⭐ Kết quả được công nhận: {best_line(view.best)} (lần thi {view.best.number}).",
        ]
    left = view.attempts_allowed - len(view.results) - (1 if view.in_progress else 0)
    if view.in_progress:
        lines.append("Bạn đang có một bài thi dở dang: gõ /thi để làm tiếp.")
    elif left > 0:
        lines.append(f"Bạn còn {left} lần thi. Gõ /thi để thi tiếp.")
    return "\n".join(lines)


# ------------------------------------------------------------------ errors

TIME_UP = "Đã hết giờ làm bài!"

ERRORS: dict[str, str] = {
    "link_code_wrong": "Mã liên kết không đúng hoặc đã hết hạn. Vui lòng kiểm tra lại, hoặc "
    "lấy mã mới bằng lệnh /lienket ở kênh đã đăng ký.",
    "link_rate": "Bạn đã nhập sai mã liên kết quá nhiều lần. Vui lòng thử lại sau {minutes} phút.",
    "link_same_person": "Tài khoản này đã thuộc hồ sơ dự thi đó rồi.",
    "link_already_registered": "Tài khoản này đã có hồ sơ dự thi riêng nên không liên kết "
    "được với hồ sơ khác. Nếu bạn lỡ đăng ký hai lần, vui lòng liên hệ Ban Tổ chức.",
    "link_channel_taken": "Hồ sơ dự thi này đã liên kết với một tài khoản khác trên kênh này. "
    "Nếu cần đổi tài khoản, vui lòng liên hệ Ban Tổ chức.",
    "consent_required": "Bạn cần đồng ý cho xử lý dữ liệu cá nhân để đăng ký dự thi.",
    "name_invalid": "Họ và tên không hợp lệ. Vui lòng nhập họ tên đầy đủ "
    "(2–100 ký tự, có chữ cái, không bắt đầu bằng dấu =, +, - hoặc @).",
    "birth_date_format": "Ngày sinh chưa đúng định dạng. Vui lòng nhập theo dạng ngày/tháng/năm, "
    "ví dụ: 25/03/1990.",
    "birth_date_impossible": "Ngày sinh không tồn tại. Vui lòng kiểm tra lại ngày, tháng, năm.",
    "birth_date_future": "Ngày sinh không thể ở tương lai. Vui lòng nhập lại.",
    "citizen_under_age": "Rất tiếc, cuộc thi dành cho công dân từ đủ {min_age} tuổi trở lên. "
    "Nếu bạn là cán bộ, công chức, viên chức, vui lòng chọn đúng đối tượng.",
    "contact_not_own": "Đây không phải số điện thoại của tài khoản Telegram này. Vui lòng bấm "
    "nút “Chia sẻ số điện thoại” để gửi số của chính bạn.",
    "phone_invalid": "Số điện thoại không hợp lệ. Vui lòng bấm nút “Chia sẻ số điện thoại” để "
    "gửi lại.",
    "phone_taken": "Số điện thoại này đã được dùng để đăng ký một tài khoản khác. Mỗi thí sinh "
    "chỉ đăng ký 01 tài khoản. " + SUPPORT,
    "unit_unknown": "Đơn vị không hợp lệ. Vui lòng chọn lại trong danh sách.",
    "already_registered": ALREADY_REGISTERED,
    "no_registration": "Bạn chưa bắt đầu đăng ký. Gõ /dangky để đăng ký.",
    "wrong_step": "Nút này không còn hiệu lực. Vui lòng dùng tin nhắn mới nhất.",
    "not_registered": NOT_REGISTERED,
    "no_attempts_left": "Bạn đã thi đủ số lần cho phép. Gõ /ketqua để xem kết quả.",
    "round_not_open": "Vòng thi chưa mở. Gõ /thele để xem thời gian thi.",
    "round_closed": "Vòng thi đã kết thúc. Gõ /ketqua để xem kết quả.",
    "bank_would_be_too_small": "Tệp chỉ có {available} câu hỏi, ít hơn {needed} câu của một "
    "lần thi: không thể dùng tệp này thay cho cả ngân hàng câu hỏi.",
    "bank_too_large": "Ngân hàng câu hỏi chỉ được có tối đa {limit} câu hỏi đang dùng; sau lần "
    "nhập này sẽ có {total} câu. Không có câu hỏi nào được ghi. Hãy dùng --replace để tệp thay "
    "cả ngân hàng, hoặc bớt câu hỏi trong tệp.",
    "bank_too_small": "Đề thi đang được chuẩn bị. Vui lòng quay lại sau hoặc liên hệ Ban Tổ chức.",
    "stale_question": "Câu hỏi này đã được trả lời hoặc không còn hiệu lực.",
    "foreign_attempt": "Nút này không thuộc bài thi của bạn.",
    "attempt_finished": "Bài thi này đã kết thúc.",
    "time_up": TIME_UP,
    "busy": "Hệ thống đang bận. Vui lòng bấm lại sau giây lát.",
    "bad_button": "Nút này không còn hiệu lực. Vui lòng dùng tin nhắn mới nhất.",
    "use_buttons": "Vui lòng chọn bằng các nút bên dưới tin nhắn.",
    "use_phone_button": "Vui lòng không gõ số điện thoại: hãy bấm nút “Chia sẻ số điện thoại” "
    "ở bàn phím bên dưới để xác thực.",
    # Also a popup (at most 200 characters): the reason is at most 90 (usecases.locks).
    "account_locked": "Tài khoản của bạn đang bị tạm khóa, chưa thể bắt đầu bài thi. "
    "Lý do: {reason}. Liên hệ Ban Tổ chức.",
}


UPLOAD_FAILED = "Không tải được tệp từ Telegram. Vui lòng gửi lại sau ít phút."


def upload_too_big(size: int, limit: int) -> str:
    return (
        f"Tệp quá lớn ({size / 1024 / 1024:.1f} MB). Hệ thống chỉ nhận tệp tối đa "
        f"{limit // (1024 * 1024)} MB gửi qua cuộc trò chuyện; với tệp lớn hơn, hãy dùng lệnh "
        "contest-bot trên máy chủ."
    )


ROLE_NAMES = {
    Role.ORGANISER: "Ban Tổ chức",
    Role.FOCAL: "đầu mối của đơn vị",
    Role.CONTESTANT: "thí sinh",
}


def refusal(needed: Role) -> str:
    """A person without the role a console command needs."""
    if needed is Role.ORGANISER:
        return "⛔ Chức năng này chỉ dành cho Ban Tổ chức. Yêu cầu của bạn đã được ghi lại."
    return (
        "⛔ Chức năng này chỉ dành cho Ban Tổ chức và đầu mối của các đơn vị. "
        "Yêu cầu của bạn đã được ghi lại."
    )


ERRORS.update(
    {
        "admin_in_settings": "Tài khoản này là thành viên Ban Tổ chức theo cấu hình "
        "(CONTEST_ADMIN_IDS), không thay đổi được quyền trong cuộc trò chuyện.",
        "no_role": "Tài khoản này không có quyền nào được cấp trong cuộc trò chuyện.",
        "unit_code_unknown": "Không có đơn vị nào có mã “{unit_code}”. Gõ /donvi để xem "
        "danh sách mã đơn vị.",
        "target_invalid": "Không nhận ra “{target}”. Hãy ghi số điện thoại đã đăng ký của "
        "thí sinh (ví dụ 0912345678) hoặc mã tài khoản (ví dụ telegram:123456789).",
        "phone_unknown": "Chưa có thí sinh nào đăng ký với số điện thoại {phone}.",
        "no_uploads": "Hệ thống chưa nhận tệp gửi lên.",
        "missing_argument": "Thiếu thông tin. {usage}",
        "prediction_pending": "Lần thi vừa xong của bạn còn chờ câu trả lời dự đoán. Vui lòng "
        "gõ một số nguyên để trả lời câu hỏi dự đoán trước; sau đó mới bắt đầu được lần thi mới.",
        "prediction_invalid": "Câu trả lời dự đoán cần là <b>một số nguyên không âm</b>, tối "
        "đa 1.000.000 (ví dụ: 125). Vui lòng gõ lại; chưa có gì được ghi nhận.",
    }
)


def error(code: str, **params: object) -> str:
    template = ERRORS.get(code, "Đã có lỗi xảy ra. Vui lòng thử lại.")
    try:
        return template.format(**params)
    except (KeyError, IndexError):
        return template


USE_BUTTONS = "Vui lòng chọn bằng các nút bên dưới tin nhắn."
USE_PHONE_BUTTON = (
    "Vui lòng không gõ số điện thoại: hãy bấm nút “Chia sẻ số điện thoại” ở bàn phím bên "
    "dưới để xác thực."
)
USE_ANSWER_BUTTONS = "Vui lòng chọn đáp án bằng các nút A, B, C dưới câu hỏi."
UNKNOWN_COMMAND = "Hệ thống không có lệnh này. " + COMMANDS
ONLY_TEXT = "Hệ thống chỉ nhận tin nhắn văn bản và các nút bấm. Gõ /huongdan để xem hướng dẫn."
UNKNOWN_TEXT = "Hệ thống chưa hiểu yêu cầu của bạn. Gõ /huongdan để xem hướng dẫn."
INTERNAL_ERROR = "Đã có lỗi xảy ra. Vui lòng thử lại sau ít phút."
PRESS_RECORDED = "Đã ghi nhận đáp án."

IMPORT_REASONS = {
    "missing_column": "thiếu cột",
    "empty": "ô trống",
    "too_long": "nội dung quá dài (tối đa {value} ký tự)",
    "bad_char": "có ký tự không hợp lệ (mã {value}); hãy xoá ký tự này rồi lưu lại tệp",
    "formula": "ô chứa công thức chưa có giá trị tính sẵn; hãy dán giá trị thay cho công thức",
    "bad_answer": "đáp án phải là a, b hoặc c",
    "duplicate_options": "các phương án trùng nhau",
    "duplicate_question": "câu hỏi trùng với dòng {value}",
    "duplicate_code": "mã đơn vị trùng với dòng {value}",
    "bad_kind": "loại đơn vị phải là phong_ban, phuong hoặc giao_duc",
    "bad_count": "số biên chế phải là số nguyên dương",
    "count_too_large": "số biên chế quá lớn (tối đa {value})",
    "no_rows": "tệp không có dòng dữ liệu nào",
    "too_many_questions": "tệp có hơn {value} câu hỏi, vượt giới hạn của ngân hàng câu hỏi; "
    "việc kiểm tra dừng ở dòng này",
    "too_many_units": "tệp có hơn {value} đơn vị, vượt giới hạn cho phép; việc kiểm tra dừng "
    "ở dòng này",
    "too_many_rows": "tệp có quá nhiều dòng (tối đa {value} dòng)",
    "too_many_columns": "có dữ liệu ở quá {value} cột; hãy xoá các cột thừa",
    "cell_too_large": "nội dung quá dài: có ô dài hơn {value} ký tự",
    "empty_file": "tệp rỗng",
    "file_type": "chỉ nhận tệp .csv hoặc .xlsx",
    "file_unreadable": "không đọc được tệp",
    "file_too_large": "tệp quá lớn (tối đa {value})",
    "not_utf8": "tệp CSV phải dùng bảng mã UTF-8",
    "bad_csv": "tệp CSV sai định dạng ở dòng này, không đọc tiếp được",
    "bad_xlsx": "tệp Excel bị lỗi hoặc không đúng định dạng .xlsx",
    "xlsx_too_large": "nội dung tệp Excel khi giải nén vượt quá {value}",
    "xlsx_compression": "tệp Excel có tỉ lệ nén bất thường (hơn {value} lần), có thể là tệp "
    "độc hại nên không được mở",
}


def import_problem(problem: ImportProblem) -> str:
    """One problem as ``Dòng 7, cột “answer”: …``. A value the reason names (a limit, a
    row) goes into the reason; any other value is quoted after it, shortened."""

    def number(value: str) -> str:  # 100000 -> 100.000
        return f"{int(value):,}".replace(",", ".") if value.isascii() and value.isdigit() else value

    def size(value: str) -> str:
        count = int(value) if value.isascii() and value.isdigit() else 0
        for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
            if count >= scale and count % scale == 0:
                return f"{number(str(count // scale))} {unit}"
        return f"{number(value)} byte"

    template = IMPORT_REASONS.get(problem.reason, problem.reason)
    where = f"Dòng {problem.row}" if problem.row else "Tệp"
    column = f", cột “{problem.column}”" if problem.column else ""
    if "{value}" in template:
        if problem.reason in ("file_too_large", "xlsx_too_large"):
            shown = size(problem.value)
        elif problem.reason in ("duplicate_question", "duplicate_code"):
            shown = problem.value
        else:
            shown = number(problem.value)
        return f"{where}{column}: {template.format(value=shown)}"
    value = " ".join(problem.value.split())
    if len(value) > 60:
        value = value[:59] + "…"
    quoted = f" (giá trị: “{value}”)" if value else ""
    return f"{where}{column}: {template}{quoted}"


def import_rejected(problems: list[ImportProblem]) -> str:
    lines = [f"Tệp bị từ chối, không có dữ liệu nào được ghi ({len(problems)} lỗi):"]
    lines += [f"- {import_problem(p)}" for p in problems]
    return "\n".join(lines)


def import_done(what: str, created: int, updated: int, withdrawn: int | None = None) -> str:
    done = f"Đã nhập {what}: {created} mục mới, {updated} mục cập nhật"
    if withdrawn is None:
        return done + "."
    return done + f", {withdrawn} câu hỏi không có trong tệp được ngừng sử dụng."


def reminders_state(on: bool) -> Reply:
    """After /nhacnho: what the person's reminders are now, and the switch back."""
    if on:
        return Reply(
            "🔔 Đã bật nhắc nhở. Hệ thống sẽ nhắc bạn về các mốc thời gian của cuộc thi "
            "(không gửi từ 21:00 đến 7:00). Gõ /nhacnho để tắt.",
            Menu.of([Choice("🔕 Tắt nhắc nhở", "n:off")]),
        )
    return Reply(
        "🔕 Đã tắt nhắc nhở. Bạn vẫn nhận được kết quả thi và thông báo của Ban Tổ chức. "
        "Gõ /nhacnho để bật lại.",
        Menu.of([Choice("🔔 Bật nhắc nhở", "n:on")]),
    )


# ------------------------------------------------------------------ linking channels


def link_code(code: str, minutes: int) -> str:
    return (
        f"🔗 Mã liên kết của bạn: {code}\n\n"
        f"Mã dùng được một lần, trong {minutes} phút. Để dùng cùng hồ sơ dự thi trên kênh "
        f"còn lại (Zalo hoặc Telegram), hãy nhắn cho bot ở kênh đó: /lienket {code}\n\n"
        "Không đưa mã này cho người khác: ai có mã sẽ dự thi bằng hồ sơ của bạn."
    )


def link_ask(other: str) -> str:
    """/lienket from someone not registered here: how to link to a registration made on
    the ``other`` channel."""
    return (
        f"🔗 Liên kết tài khoản: nếu bạn đã đăng ký trên {other}, hãy gõ /lienket trong bot "
        f"{other} để nhận mã 6 chữ số, rồi gõ vào đây: /lienket và mã đó (ví dụ: /lienket "
        "123456). Hai tài khoản sẽ dùng chung một hồ sơ và số lần thi. Nếu chưa đăng ký ở "
        "đâu, gõ /dangky."
    )


def linked(name: str) -> str:
    return (
        f"✅ Đã liên kết tài khoản này với hồ sơ dự thi của {h(name)}. Số lần thi và kết quả "
        "được tính chung cho cả hai kênh; kết quả và nhắc nhở được gửi tới kênh bạn dùng gần "
        "nhất."
    )
