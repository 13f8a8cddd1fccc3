"""The console's home, roles (promote, demote, focal persons) and the audit log."""

from __future__ import annotations

from contest.model import Role
from contest.rules import to_local
from contest.ui.markup import h
from contest.ui.reply import Choice, Menu, Reply
from contest.ui.router import CONSOLE, Request, Ui, action
from contest.usecases.staff import Granted

OUTCOME_MARKS = {"ok": "✅", "refused": "⛔", "failed": "⚠️"}


def _pages(name: str, page: int, pages: int) -> list[Choice]:
    nav = []
    if page > 0:
        nav.append(Choice("◀️ Trang trước", action(name, page - 1)))
    if page + 1 < pages:
        nav.append(Choice("Trang sau ▶️", action(name, page + 1)))
    return nav


@CONSOLE.command("quantri", role=Role.FOCAL, help="Các chức năng quản trị")
async def home(ui: Ui, request: Request) -> Reply:
    """What the actor may do, one line a command."""
    role = request.actor.role
    lines = [
        "<b>🛠 CHỨC NĂNG QUẢN TRỊ</b>",
        f"Bạn đang dùng quyền: {'Ban Tổ chức' if role is Role.ORGANISER else 'đầu mối đơn vị'}.",
        "",
    ]
    lines += [f"/{name} – {h(help_text)}" for name, help_text in ui.console.menu(role)]
    return Reply("\n".join(lines))


def _granted_text(granted: Granted, verb: str) -> str:
    who = h(granted.person_name) if granted.person_name else "tài khoản"
    accounts = ", ".join(h(str(a)) for a in granted.accounts)
    return f"{verb} {who} ({accounts})."


@CONSOLE.command(
    "capquyen",
    role=Role.ORGANISER,
    writes=True,
    help="Cấp quyền Ban Tổ chức: /capquyen <số điện thoại hoặc mã tài khoản>",
)
async def promote(ui: Ui, request: Request) -> Reply:
    if not request.args:
        return Reply(h(USAGE_PROMOTE))
    granted = await ui.service.staff.promote(request.actor, " ".join(request.args))
    return Reply("✅ " + _granted_text(granted, "Đã cấp quyền Ban Tổ chức cho"), roles_changed=True)


@CONSOLE.command(
    "thuquyen",
    role=Role.ORGANISER,
    writes=True,
    help="Thu hồi quyền đã cấp: /thuquyen <số điện thoại hoặc mã tài khoản>",
)
async def demote(ui: Ui, request: Request) -> Reply:
    if not request.args:
        return Reply(h(USAGE_DEMOTE))
    granted = await ui.service.staff.demote(request.actor, " ".join(request.args))
    return Reply("✅ " + _granted_text(granted, "Đã thu hồi quyền của"), roles_changed=True)


@CONSOLE.command(
    "daumoi",
    role=Role.ORGANISER,
    writes=True,
    help="Giao đầu mối đơn vị: /daumoi <mã đơn vị> <số điện thoại>",
)
async def assign_focal(ui: Ui, request: Request) -> Reply:
    if len(request.args) < 2:
        return Reply(h(USAGE_FOCAL))
    unit_code, target = request.args[0], " ".join(request.args[1:])
    granted = await ui.service.staff.assign_focal(request.actor, unit_code, target)
    assert granted.unit is not None
    return Reply(
        "✅ "
        + _granted_text(granted, "Đã giao")
        .removesuffix(".")
        .replace("Đã giao", "Đã giao làm đầu mối của " + h(granted.unit.name) + ":", 1)
        + ". Đầu mối chỉ xem được tình hình tham gia của đơn vị mình (/thongke).",
        roles_changed=True,
    )


@CONSOLE.command("nhatky", role=Role.ORGANISER, help="Nhật ký thao tác quản trị")
async def audit_log(ui: Ui, request: Request) -> Reply:
    page = int(request.args[0]) if request.args and request.args[0].isdigit() else 0
    return await _audit_page(ui, page)


@CONSOLE.action("audit", role=Role.ORGANISER)
async def audit_page(ui: Ui, request: Request) -> Reply:
    page = int(request.args[0]) if request.args and request.args[0].isdigit() else 0
    return await _audit_page(ui, page)


async def _audit_page(ui: Ui, page: int) -> Reply:
    found = await ui.service.staff.audit_page(page)
    lines = [f"<b>📒 NHẬT KÝ QUẢN TRỊ</b> — trang {found.page + 1}/{found.pages}", ""]
    if not found.entries:
        lines.append("Chưa có thao tác nào.")
    for entry in found.entries:
        who = h(entry.actor_name or entry.actor)
        target = f" · {h(entry.target)}" if entry.target else ""
        lines.append(
            f"{OUTCOME_MARKS.get(entry.outcome, '•')} {to_local(entry.at):%d/%m %H:%M} "
            f"{who}: {h(entry.action)}{target}"
        )
    nav = _pages("audit", found.page, found.pages)
    return Reply("\n".join(lines), Menu.of(nav) if nav else None)


USAGE_PROMOTE = (
    "Cách dùng: /capquyen <số điện thoại của thí sinh đã đăng ký>, hoặc "
    "/capquyen telegram:<mã tài khoản Telegram>."
)
USAGE_DEMOTE = (
    "Cách dùng: /thuquyen <số điện thoại của thí sinh đã đăng ký>, hoặc "
    "/thuquyen telegram:<mã tài khoản Telegram>."
)
USAGE_FOCAL = (
    "Cách dùng: /daumoi <mã đơn vị> <số điện thoại của thí sinh đã đăng ký>, ví dụ: "
    "/daumoi P-CATLINH 0912345678."
)
