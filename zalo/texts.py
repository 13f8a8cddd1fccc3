"""What the bot says on Zalo where Telegram's wording would not fit: no buttons (numbered
choices and typed letters instead), no contact sharing (a typed phone number), no edits
(one message per question). Everything else is the channel-neutral ``contest.ui.texts``."""

from __future__ import annotations

from datetime import datetime

from contest.rules import ContestRules, RoundRules, to_local
from contest.services import ExamCard
from contest.ui import texts
from contest.ui.texts import fmt_clock, fmt_window, h

BTN_START_EXAM = "▶️ Bắt đầu làm bài"
BTN_EXAM = "📝 Vào thi"
BTN_REGISTER = "📝 Đăng ký dự thi"
BTN_RESULTS = "📊 Xem kết quả"
BTN_PROFILE = "👤 Hồ sơ dự thi"
BTN_FEEDBACK = "💬 Góp ý, hỏi Ban Tổ chức"
BTN_RULES = "📜 Thể lệ"
BTN_GUIDE = "❓ Hướng dẫn"
BTN_REMINDERS = "🔔 Bật/tắt nhắc nhở"
BTN_LINK = "🔗 Liên kết với tài khoản Telegram"

COMMANDS = (
    "Các lệnh (gõ có hoặc không có dấu “/”): dangky – đăng ký; thi – vào thi; ketqua – xem "
    "kết quả; hoso – xem hồ sơ; gopy – góp ý, hỏi Ban Tổ chức; thele – thể lệ; huongdan – "
    "hướng dẫn; nhacnho – bật/tắt nhắc nhở; lienket – liên kết với Telegram; menu – danh sách "
    "chức năng."
)


def welcome(name: str, registered: bool, rules: ContestRules) -> str:
    r1 = rules.round1
    lines = [
        f"Xin chào {h(name)}!",
        "",
        "Đây là kênh dự thi trên Zalo của Cuộc thi trực tuyến “Tìm hiểu công tác cải cách hành "
        f"chính trên địa bàn quận Đống Đa năm {to_local(r1.window.opens).year}” do UBND quận "
        "Đống Đa tổ chức.",
        "",
        f"• Thời gian thi vòng 1: {fmt_window(r1)}.",
        f"• Mỗi lần thi có {r1.questions} câu hỏi, mỗi câu là một tin nhắn; bạn trả lời bằng "
        f"cách gõ một chữ cái A, B hoặc C. Thời gian làm bài {r1.minutes} phút.",
        f"• Mỗi thí sinh được thi {r1.attempts} lần; kết quả được công nhận là lần có số câu "
        "đúng nhiều nhất (nếu bằng nhau, lần có thời gian làm bài ngắn hơn).",
        "",
    ]
    if registered:
        lines.append("Bạn đã đăng ký. Chọn một chức năng bên dưới.")
    else:
        lines.append("Để dự thi, bạn cần đăng ký một lần: gõ 1 để bắt đầu.")
    return "\n".join(lines)


MAIN_MENU_HEAD = "Bạn muốn làm gì?"

CONSENT = texts.CONSENT.replace(
    "Nếu đồng ý, vui lòng bấm “Tôi đồng ý”.", "Nếu đồng ý, vui lòng gõ 1."
)
ASK_PHONE = (
    "Bước 3/5. Vui lòng gõ <b>số điện thoại di động</b> của bạn (10 chữ số), ví dụ: "
    "0912345678.\n\n"
    "Lưu ý: Zalo không cho phép chia sẻ số điện thoại đã xác thực như Telegram, nên số bạn "
    "gõ không được hệ thống xác thực. Vui lòng gõ đúng số của chính bạn: Ban Tổ chức dùng số "
    "này để liên hệ trao giải và có thể kiểm tra lại."
)
PHONE_INVALID = (
    "Số điện thoại di động chưa đúng. Vui lòng gõ số di động Việt Nam gồm 10 chữ số, bắt "
    "đầu bằng 03, 05, 07, 08 hoặc 09 (ví dụ: 0912345678; có thể viết +84912345678)."
)
PHONE_SAVED = "✅ Đã ghi nhận số điện thoại (số do bạn tự khai, chưa được xác thực)."
CHOOSE_NUMBER = "Vui lòng gõ số thứ tự của một lựa chọn trong danh sách gần nhất."
NUMBER_OUT_OF_RANGE = "Không có lựa chọn số {number}. " + CHOOSE_NUMBER
NO_MENU = "Hiện không có danh sách nào để chọn. Gõ menu để xem các chức năng."
UNKNOWN_TEXT = "Hệ thống chưa hiểu yêu cầu của bạn. Gõ menu để xem các chức năng."
UNKNOWN_COMMAND = "Hệ thống không có lệnh này. " + COMMANDS
ONLY_TEXT = (
    "Hệ thống chỉ nhận tin nhắn văn bản (ảnh, nhãn dán chưa được hỗ trợ). Gõ menu để xem "
    "các chức năng."
)
GROUP_CHAT = (
    "Cuộc thi chỉ diễn ra trong trò chuyện riêng với bot. Vui lòng nhắn riêng cho bot để "
    "đăng ký và dự thi."
)
NO_UPLOADS = (
    "Zalo không cho phép gửi tệp cho bot, nên không nhập được ngân hàng câu hỏi hay danh sách "
    "đơn vị ở đây. Vui lòng gửi tệp qua Telegram hoặc dùng lệnh contest-bot import-questions, "
    "import-units trên máy chủ."
)
NO_DOCUMENTS = (
    "Zalo không gửi được tệp đính kèm. Vui lòng lấy tệp qua Telegram hoặc dùng lệnh "
    "contest-bot export trên máy chủ."
)


def exam_intro(rules: RoundRules, used: int, best_line: str | None) -> str:
    left = rules.attempts - used
    lines = [
        f"📝 VÒNG {rules.number}",
        "",
        f"• Mỗi lần thi có {rules.questions} câu hỏi. Mỗi câu là một tin nhắn có số thứ tự, "
        "thời gian còn lại và ba phương án A, B, C.",
        "• Trả lời bằng cách gõ một chữ cái: A, B hoặc C (gõ a, b, c hay “b.” đều được). "
        "Câu trả lời luôn tính cho câu hỏi mới nhất bot đã gửi; tin nhắn gõ trước khi câu "
        "mới đến sẽ không được tính cho câu đó.",
        f"• Thời gian làm bài: {rules.minutes} phút, tính từ khi bắt đầu. Hết giờ, bài được "
        "nộp tự động; câu chưa trả lời tính là sai.",
        "• Mỗi câu chỉ trả lời một lần, không sửa lại được. Nếu bị gián đoạn, gõ thi để làm "
        "tiếp (thời gian vẫn tính).",
        f"• Bạn còn {left}/{rules.attempts} lần thi.",
    ]
    if best_line is not None:
        lines.append(f"• Kết quả được công nhận hiện tại: {best_line}.")
    lines += ["", "Khi đã sẵn sàng, gõ 1 để bắt đầu làm bài."]
    return "\n".join(lines)


def card(card: ExamCard, rules: RoundRules, now: datetime) -> str:
    """One question as one message: its number, the time left, the text, the options."""
    left = max((card.deadline_at - now).total_seconds(), 0)
    lines = [
        f"Câu {card.position + 1}/{card.total} · ⏱ Còn lại {fmt_clock(left)} · "
        f"Vòng {rules.number}, lần thi {card.attempt_number}/{rules.attempts}",
        f"({h(card.topic)})",
        "",
        h(card.text),
        "",
    ]
    for label, option in zip(texts.LABELS, card.options, strict=True):
        lines.append(f"{label}. {h(option)}")
    lines += ["", f"Gõ A, B hoặc C để trả lời câu {card.position + 1}."]
    return "\n".join(lines)


RESUME = "▶️ Tiếp tục bài thi đang làm dở."


def answer_hint(position: int) -> str:
    return (
        f"Vui lòng trả lời câu {position + 1} bằng một chữ cái: A, B hoặc C. Không có gì thay đổi."
    )


def stale_reply(position: int) -> str:
    """A reply typed before the current question reached the person (a doubled or late
    reply): it answers nothing."""
    return (
        f"Tin nhắn này được gửi trước khi câu {position + 1} đến, nên không được tính cho câu "
        f"{position + 1}. Vui lòng đọc câu {position + 1} rồi gõ A, B hoặc C."
    )


def already_answered(position: int) -> str:
    return f"Câu {position + 1} đã được trả lời trước đó. Câu hỏi hiện tại:"


def registered(name: str, rules: RoundRules) -> str:
    return (
        f"🎉 {h(name)} đã đăng ký dự thi thành công!\n\n"
        f"Thời gian thi vòng {rules.number}: {fmt_window(rules)}. Gõ 1 (hoặc gõ thi) để vào "
        "thi, hoso để xem hồ sơ."
    )


def ask_group(full_name: str, born: str, phone: str) -> str:
    return (
        f"{texts.ASK_GROUP}\n\n"
        f"Thông tin đã nhập: {h(full_name)}, sinh ngày {born}, số điện thoại {h(phone)}. "
        "Nếu có thông tin chưa đúng, gõ số của mục “Sửa” tương ứng (hoặc gõ lại ngày sinh "
        "đúng)."
    )


def summary_footer() -> str:
    return "Nếu đúng, gõ 1 để xác nhận đăng ký. Nếu cần sửa, gõ số của mục tương ứng."


ERRORS = {
    "use_buttons": CHOOSE_NUMBER,
    "use_phone_button": PHONE_INVALID,
    "wrong_step": "Lựa chọn này không còn hiệu lực. Vui lòng dùng tin nhắn mới nhất.",
    "bad_button": "Lựa chọn này không còn hiệu lực. Vui lòng dùng tin nhắn mới nhất.",
    "contact_not_own": PHONE_INVALID,
    "phone_invalid": PHONE_INVALID,
    "busy": "Hệ thống đang bận. Vui lòng gửi lại sau giây lát.",
}


def error(code: str, **params: object) -> str:
    """The Zalo wording of an error where it differs (no buttons), else the shared one."""
    template = ERRORS.get(code)
    if template is None:
        return texts.error(code, **params)
    return template.format(**params)


def guide(rules: ContestRules) -> str:
    r1 = rules.round1
    return "\n".join(
        [
            "❓ HƯỚNG DẪN DỰ THI TRÊN ZALO",
            "",
            "1. Gõ dangky và làm theo từng bước: đồng ý xử lý dữ liệu cá nhân, nhập họ tên, "
            "ngày sinh, số điện thoại di động, chọn đối tượng dự thi, rồi chọn đơn vị công tác "
            "và chức vụ (cán bộ, công chức, viên chức) hoặc phường (công dân). Khi bot đưa ra "
            "danh sách đánh số, gõ số tương ứng để chọn.",
            f"2. Mỗi lần thi có {r1.questions} câu, làm trong {r1.minutes} phút; mỗi người được "
            f"thi {r1.attempts} lần. Gõ thi rồi gõ 1 để bắt đầu. Mỗi câu hỏi là một tin nhắn; "
            "gõ A, B hoặc C để trả lời câu mới nhất. Đáp án đã gửi được lưu ngay, không sửa "
            "được.",
            "3. Thời gian vẫn tính khi bạn rời khỏi bài thi; gõ thi để làm tiếp bài đang dở. "
            "Thời gian còn lại ghi trên mỗi câu hỏi.",
            "4. Gõ ketqua để xem kết quả, hoso để xem hồ sơ đăng ký.",
            "5. Đã đăng ký trên Telegram? Gõ /lienket trong bot Telegram để lấy mã, rồi gõ "
            "lienket kèm mã đó ở đây (ví dụ: lienket 123456) để dùng chung hồ sơ.",
            "6. Vòng 2 (thí sinh có tên trong danh sách, thi tập trung tại hội trường): gõ vong2 "
            "rồi gõ mã phòng thi do Ban Tổ chức công bố tại hội trường, sau đó gõ 1 để bắt đầu.",
            "",
            COMMANDS,
            texts.SUPPORT,
        ]
    )
