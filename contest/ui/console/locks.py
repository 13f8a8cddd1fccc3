"""/khoa and /mokhoa: lock a contestant out of attempts and rankings (a duplicate account,
say), with the reason kept, or lift the lock. Each change is audited in its transaction."""

from __future__ import annotations

from contest.errors import ContestError
from contest.model import Role
from contest.rules import to_local
from contest.ui import texts
from contest.ui.console.stats import escaped
from contest.ui.markup import h
from contest.ui.reply import Reply
from contest.ui.router import CONSOLE, Request, Ui
from contest.usecases.locks import MAX_LOCK_REASON, LockView

USAGE_LOCK = (
    "Cách dùng: /khoa <số điện thoại của thí sinh> <lý do>, ví dụ: /khoa 0912345678 Trùng "
    f"tài khoản với số 0987654321. Lý do được báo cho thí sinh (tối đa {MAX_LOCK_REASON} "
    "ký tự)."
)
USAGE_UNLOCK = "Cách dùng: /mokhoa <số điện thoại của thí sinh>, ví dụ: /mokhoa 0912345678."

texts.ERRORS.update(
    {
        "lock_reason_missing": "Cần ghi lý do khóa. " + h(USAGE_LOCK),
        "lock_reason_too_long": "Lý do khóa dài {length} ký tự, tối đa {limit} ký tự (thí sinh "
        "đọc lý do này trong thông báo). Vui lòng viết ngắn gọn hơn.",
        "lock_phone_invalid": "“{phone}” không phải số điện thoại hợp lệ. " + h(USAGE_LOCK),
        "already_locked": "Thí sinh {name} ({phone}) đã bị khóa từ {since}, lý do: {reason}. "
        "Không có gì thay đổi.",
        "not_locked": "Thí sinh {name} ({phone}) không bị khóa. Không có gì thay đổi.",
    }
)


def locked_text(view: LockView) -> str:
    person = view.person
    lines = [
        f"🔒 Đã khóa tài khoản dự thi của <b>{h(person.full_name)}</b> ({h(person.phone)}).",
        f"Lý do: {h(view.reason or '')}",
        "Thí sinh không bắt đầu được lần thi mới, không có tên trong bảng xếp hạng, danh sách "
        "vào vòng 2 và số liệu tham gia của đơn vị. Gõ /mokhoa để mở khóa.",
    ]
    if view.in_progress:
        lines.append(
            "⚠️ Thí sinh đang làm dở một bài thi: bài này vẫn làm tiếp được nhưng không được "
            "tính khi tài khoản còn bị khóa."
        )
    return "\n".join(lines)


def unlocked_text(view: LockView) -> str:
    person = view.person
    since = to_local(person.locked_at) if person.locked_at else None
    lines = [
        f"🔓 Đã mở khóa tài khoản dự thi của <b>{h(person.full_name)}</b> ({h(person.phone)}).",
    ]
    if since is not None:
        lines.append(f"Đã bị khóa từ {since:%H:%M ngày %d/%m/%Y}, lý do: {h(view.reason or '')}.")
    lines.append(
        "Các lần thi của thí sinh được tính trở lại trong bảng xếp hạng và số liệu tham gia."
    )
    return "\n".join(lines)


@CONSOLE.command(
    "khoa",
    role=Role.ORGANISER,
    writes=True,
    help="Khóa tài khoản thí sinh: /khoa <số điện thoại> <lý do>",
)
async def lock(ui: Ui, request: Request) -> Reply:
    if not request.args:
        return Reply(h(USAGE_LOCK))
    phone, reason = request.args[0], " ".join(request.args[1:])
    try:
        view = await ui.service.locks.lock(request.actor, phone, reason)
    except ContestError as exc:
        raise escaped(exc) from None
    return Reply(locked_text(view))


@CONSOLE.command(
    "mokhoa",
    role=Role.ORGANISER,
    writes=True,
    help="Mở khóa tài khoản thí sinh: /mokhoa <số điện thoại>",
)
async def unlock(ui: Ui, request: Request) -> Reply:
    if not request.args:
        return Reply(h(USAGE_UNLOCK))
    try:
        view = await ui.service.locks.unlock(request.actor, " ".join(request.args))
    except ContestError as exc:
        raise escaped(exc) from None
    return Reply(unlocked_text(view))
