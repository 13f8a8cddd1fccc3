"""/thongke: the live picture of participation (totals, and every unit against the plan's
quota with its emulation figures, worst first, paged); a focal person sees their own unit
only, with the colleagues who registered and have or have not taken the exam yet.
/bxh: the leaderboard, ranked by the tie rule in force, ties shown as such, paged."""

from __future__ import annotations

from datetime import datetime

from contest.errors import ContestError
from contest.model import Role, UnitKind
from contest.participation import Totals, UnitParticipation
from contest.ports import Colleague
from contest.rules import QuotaRules, to_local
from contest.ui import texts
from contest.ui.markup import h
from contest.ui.reply import Choice, Menu, Reply
from contest.ui.router import CONSOLE, Request, Ui, action
from contest.usecases.results import Leaderboard, Placed
from contest.usecases.stats import Overview, UnitReport

PEOPLE_PAGE_SIZE = 20  # colleagues per page of a unit's lists
UNIT_NAME_MAX = 90  # a unit's name in the table (names may be 200 characters long)
PLACE_MAX = 60
WAITING, TOOK_PART = "w", "t"  # a unit's two lists, in actions
ALL = "all"
KIND_BUTTONS = {
    UnitKind.WARD: "🏘 Phường",
    UnitKind.DEPARTMENT: "🏛 Phòng, ban",
    UnitKind.EDUCATION: "🎓 Giáo dục",
}
BTN_ALL = "📋 Tất cả đơn vị"
BTN_REFRESH = "🔄 Cập nhật"
BTN_PREV = "◀️ Trang trước"
BTN_NEXT = "Trang sau ▶️"
BTN_FIRST = "⏮"
BTN_LAST = "⏭"
BTN_TABLE = "⬅️ Bảng các đơn vị"
FOREIGN_UNIT = (
    "⛔ Đầu mối chỉ xem được tình hình tham gia của đơn vị mình. Yêu cầu của bạn đã được ghi lại."
)

texts.ERRORS.update(
    {
        "no_focal_unit": "Tài khoản của bạn chưa được giao làm đầu mối của đơn vị nào. "
        "Vui lòng liên hệ Ban Tổ chức.",
        "unit_gone": "Không tìm thấy đơn vị này. Gõ /thongke để xem lại.",
        "foreign_unit": FOREIGN_UNIT,
    }
)


# ------------------------------------------------------------------ numbers


def num(value: int) -> str:
    """1200 -> '1.200' (Vietnamese style)."""
    return f"{value:,}".replace(",", ".")


def pct(part: int, whole: int) -> str:
    """A share in percent, rounded down to a tenth, so that 29.97% never reads as 30%:
    6/20 -> '30%', 10/34 -> '29,4%'."""
    if whole <= 0:
        return "–"
    tenths = part * 1000 // whole
    whole_part, tenth = divmod(tenths, 10)
    return f"{num(whole_part)}%" if tenth == 0 else f"{num(whole_part)},{tenth}%"


def decimal(value: float) -> str:
    """15.25 -> '15,3' (one decimal, Vietnamese comma)."""
    return f"{value:.1f}".replace(".", ",")


def escaped(exc: ContestError) -> ContestError:
    """The error with its parameters as the markup shows them (what a person typed is
    escaped, times are local)."""
    params = {
        key: f"{to_local(value):%H:%M ngày %d/%m/%Y}"
        if isinstance(value, datetime)
        else h(str(value))
        for key, value in exc.params.items()
    }
    return ContestError(exc.code, **params)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def when(moment: datetime) -> str:
    return f"{to_local(moment):%H:%M ngày %d/%m/%Y}"


def quota_text(quota: QuotaRules) -> str:
    ratio = pct(round(quota.min_staff_ratio * 1000), 1000)
    return f"≥ {quota.min_leaders} lãnh đạo và ≥ {ratio} biên chế"


def verdict(row: UnitParticipation, quota: QuotaRules) -> str:
    """'✓ Đạt', or '✗ thiếu 1 lãnh đạo, cần thêm 3 người'."""
    if row.meets_quota:
        return "✓ Đạt"
    missing = []
    leaders_missing = max(quota.min_leaders - row.leaders, 0)
    if leaders_missing:
        missing.append(f"thiếu {leaders_missing} lãnh đạo")
    if row.missing:
        missing.append(f"cần thêm {num(row.missing)} người")
    return "✗ " + ", ".join(missing)


def emulation(row: UnitParticipation, questions: int) -> str:
    """The figures the unit's year-end emulation score rests on."""
    average = (
        f"{decimal(row.average_best * questions)}/{questions}"
        if row.average_best is not None
        else "–"
    )
    leader = "có lãnh đạo tham gia" if row.leaders else "chưa có lãnh đạo tham gia"
    rate = pct(row.participants, row.unit.staff_count)
    return f"tỉ lệ tham gia {rate} · {leader} · điểm bình quân {average}"


# ------------------------------------------------------------------ the table


def _totals_lines(totals: Totals) -> list[str]:
    by_kind = totals.by_kind
    servants_took = sum(took for _, took in by_kind.values())
    citizens_took = max(totals.took_part - servants_took, 0)
    lines = [
        f"• Đã đăng ký: <b>{num(totals.registered)}</b> người — cán bộ, công chức, viên "
        f"chức: {num(totals.civil_servants)} · công dân: {num(totals.citizens)}",
        f"• Đã thi ít nhất 1 lần: <b>{num(totals.took_part)}</b> người "
        f"({pct(totals.took_part, totals.registered)} số đã đăng ký) — cán bộ, công chức, "
        f"viên chức: {num(servants_took)} · công dân: {num(citizens_took)}",
        f"• Bài thi đã nộp: {num(totals.attempts)} · đang làm bài: {num(totals.in_progress)}",
        "• Theo khối (đã thi/đã đăng ký):",
    ]
    for kind in UnitKind:
        registered, took = by_kind.get(kind, (0, 0))
        lines.append(f"   – {texts.KIND_NAMES[kind]}: {num(took)}/{num(registered)}")
    return lines


def unit_block(index: int, row: UnitParticipation, quota: QuotaRules, questions: int) -> str:
    unit = row.unit
    return "\n".join(
        [
            f"<b>{index}. {h(clip(unit.name, UNIT_NAME_MAX))}</b> — {verdict(row, quota)}",
            f"   Biên chế {num(unit.staff_count)} · đăng ký {num(row.registered)} · đã thi "
            f"{num(row.participants)} ({pct(row.participants, unit.staff_count)}) · lãnh đạo "
            f"đã thi {num(row.leaders)} · chỉ tiêu {num(row.needed)} người",
            f"   Thi đua: {emulation(row, questions)}",
        ]
    )


def overview_text(view: Overview, quota: QuotaRules, questions: int, round_number: int) -> str:
    lines = [
        f"📊 <b>THỐNG KÊ THAM GIA VÒNG {round_number}</b>",
        f"<i>Số liệu lúc {when(view.at)}</i>",
        "",
    ]
    if view.page == 0:
        lines += [*_totals_lines(view.totals), ""]
    scope = texts.KIND_NAMES[view.kind] if view.kind is not None else "Tất cả đơn vị"
    lines += [
        f"<b>{scope}</b>: {num(view.met)}/{num(view.count)} đơn vị đạt chỉ tiêu "
        f"({quota_text(quota)}).",
        f"Chưa đạt xếp trước · trang {view.page + 1}/{view.pages}",
        "",
    ]
    if not view.units:
        lines.append("Chưa có đơn vị nào.")
    for i, row in enumerate(view.units, start=view.offset + 1):
        lines += [unit_block(i, row, quota, questions), ""]
    return "\n".join(lines).rstrip()


def overview_menu(view: Overview) -> Menu:
    kind = view.kind.value if view.kind is not None else ALL
    nav = []
    if view.page > 1:
        nav.append(Choice(BTN_FIRST, action("stats", kind, 0)))
    if view.page > 0:
        nav.append(Choice(BTN_PREV, action("stats", kind, view.page - 1)))
    nav.append(Choice(BTN_REFRESH, action("stats", kind, view.page)))
    if view.page + 1 < view.pages:
        nav.append(Choice(BTN_NEXT, action("stats", kind, view.page + 1)))
    if view.page + 2 < view.pages:
        nav.append(Choice(BTN_LAST, action("stats", kind, view.pages - 1)))
    jumps = [
        Choice(label, action("stats", k.value, 0))
        for k, label in KIND_BUTTONS.items()
        if k is not view.kind
    ]
    if view.kind is not None:
        jumps.append(Choice(BTN_ALL, action("stats", ALL, 0)))
    return Menu.of(nav, jumps)


# ------------------------------------------------------------------ one unit


def _person_line(index: int, person: Colleague) -> str:
    notes = []
    if person.leader:
        notes.append("lãnh đạo")
    if person.finished:
        notes.append(f"{person.finished} lần thi")
    elif person.in_progress:
        notes.append("đang làm bài")
    suffix = f" ({', '.join(notes)})" if notes else ""
    return f"{index}. {h(person.full_name)}{suffix}"


def unit_text(
    report: UnitReport,
    which: str,
    page: int,
    quota: QuotaRules,
    questions: int,
    round_number: int,
) -> tuple[str, int, int]:
    """The unit's figures and one page of one of its lists; returns the text, the page
    shown and the number of pages."""
    row = report.row
    unit = row.unit
    unregistered = max(unit.staff_count - row.registered, 0)
    lines = [
        f"📊 <b>THAM GIA VÒNG {round_number} — {h(clip(unit.name, UNIT_NAME_MAX))}</b>",
        f"<i>Số liệu lúc {when(report.at)}</i>",
        "",
        f"• Biên chế: {num(unit.staff_count)} người · đã đăng ký: {num(row.registered)} · "
        f"đã thi: {num(row.participants)} ({pct(row.participants, unit.staff_count)})",
        f"• Lãnh đạo đã thi: {num(row.leaders)}",
        f"• Chỉ tiêu ({quota_text(quota)} = {num(row.needed)} người): {verdict(row, quota)}",
        f"• Thi đua: {emulation(row, questions)}",
    ]
    if unregistered:
        lines.append(
            f"• Còn {num(unregistered)} người trong biên chế chưa đăng ký dự thi: hãy vận "
            "động đăng ký (/dangky) và dự thi."
        )
    people = report.waiting if which == WAITING else report.took_part
    pages = max(1, -(-len(people) // PEOPLE_PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    title = (
        f"⏳ Đã đăng ký, chưa thi ({num(len(report.waiting))})"
        if which == WAITING
        else f"✅ Đã thi ({num(len(report.took_part))})"
    )
    lines += ["", f"<b>{title}</b> · trang {page + 1}/{pages}"]
    shown = people[page * PEOPLE_PAGE_SIZE : (page + 1) * PEOPLE_PAGE_SIZE]
    if not shown:
        lines.append("Không có ai." if which == WAITING else "Chưa có ai.")
    for i, person in enumerate(shown, start=page * PEOPLE_PAGE_SIZE + 1):
        lines.append(_person_line(i, person))
    return "\n".join(lines), page, pages


def unit_menu(report: UnitReport, which: str, page: int, pages: int, organiser: bool) -> Menu:
    unit_id = report.row.unit.id
    nav = []
    if page > 0:
        nav.append(Choice(BTN_PREV, action("unit", unit_id, which, page - 1)))
    nav.append(Choice(BTN_REFRESH, action("unit", unit_id, which, page)))
    if page + 1 < pages:
        nav.append(Choice(BTN_NEXT, action("unit", unit_id, which, page + 1)))
    lists = [
        Choice(f"⏳ Chưa thi ({num(len(report.waiting))})", action("unit", unit_id, WAITING, 0)),
        Choice(f"✅ Đã thi ({num(len(report.took_part))})", action("unit", unit_id, TOOK_PART, 0)),
    ]
    back = [Choice(BTN_TABLE, action("stats", ALL, 0))] if organiser else []
    return Menu.of(nav, lists, back)


# ------------------------------------------------------------------ routes


def _page(value: str | None) -> int:
    return int(value) if value is not None and value.isdigit() else 0


async def _unit_reply(
    ui: Ui,
    request: Request,
    what: str,
    *,
    unit_id: int | None = None,
    code: str | None = None,
    which: str = WAITING,
    page: int = 0,
) -> Reply:
    """A unit's screen. The route records itself in the audit log: a focal person asking
    for another unit is refused (and recorded so), whatever the request carried."""
    actor = request.actor
    staff = ui.service.staff
    try:
        report = await ui.service.stats.unit_report(actor, unit_id=unit_id, code=code)
    except ContestError as exc:
        if exc.code != "foreign_unit":
            raise escaped(exc) from None
        await staff.record(
            actor,
            "unit",
            "refused",
            target=what[:255],
            detail={"unit_id": exc.params.get("unit_id"), "own_unit_id": actor.unit_id},
        )
        return Reply(FOREIGN_UNIT, alert=FOREIGN_UNIT)
    rules = ui.service.rules
    text, page, pages = unit_text(
        report, which, page, rules.quota, rules.round1.questions, rules.round1.number
    )
    await staff.record(actor, "unit", "ok", target=what[:255])
    organiser = actor.role is Role.ORGANISER
    return Reply(text, unit_menu(report, which, page, pages, organiser))


async def _overview_reply(ui: Ui, kind: UnitKind | None, page: int) -> Reply:
    rules = ui.service.rules
    view = await ui.service.stats.overview(kind, page)
    text = overview_text(view, rules.quota, rules.round1.questions, rules.round1.number)
    return Reply(text, overview_menu(view))


@CONSOLE.command(
    "thongke",
    role=Role.FOCAL,
    writes=True,  # records itself: a focal person's request for another unit is refused
    help="Thống kê tham gia theo đơn vị: /thongke hoặc /thongke <mã đơn vị>",
)
async def stats(ui: Ui, request: Request) -> Reply:
    actor = request.actor
    what = " ".join(["/thongke", *request.args])
    if request.args:
        return await _unit_reply(ui, request, what, code=request.args[0])
    if actor.role is Role.ORGANISER:
        reply = await _overview_reply(ui, None, 0)
        await ui.service.staff.record(actor, "thongke", "ok", target=what)
        return reply
    return await _unit_reply(ui, request, what)


@CONSOLE.action("stats", role=Role.ORGANISER)
async def stats_page(ui: Ui, request: Request) -> Reply:
    """``a:stats:<kind or all>:<page>``."""
    args = request.args
    kinds = {k.value: k for k in UnitKind}
    kind = kinds.get(args[0]) if args else None  # "all", or anything forged: every unit
    return await _overview_reply(ui, kind, _page(args[1] if len(args) > 1 else None))


@CONSOLE.action("unit", role=Role.FOCAL, writes=True)
async def unit_page(ui: Ui, request: Request) -> Reply:
    """``a:unit:<unit id>:<w or t>:<page>``; a focal person gets their own unit only."""
    args = request.args
    what = action("unit", *args)
    if not args or not args[0].isdigit():
        raise ContestError("unit_gone")
    which = TOOK_PART if len(args) > 1 and args[1] == TOOK_PART else WAITING
    page = _page(args[2] if len(args) > 2 else None)
    return await _unit_reply(ui, request, what, unit_id=int(args[0]), which=which, page=page)


# ------------------------------------------------------------------ the leaderboard


def fmt_time(seconds: float, decimals: int = 1) -> str:
    """75.3 s -> '01:15,3' (minutes:seconds with a decimal comma)."""
    scale = 10**decimals
    units = round(seconds * scale)
    minutes, rest = divmod(units, 60 * scale)
    whole, fraction = divmod(rest, scale)
    return f"{minutes:02d}:{whole:02d},{fraction:0{decimals}d}"


def page_times(rows: list[Placed]) -> list[str]:
    """Each row's time with one decimal, or with as many more as it takes to tell it from
    a neighbour with as many correct answers and another rank: two ranks never show the
    same score and time (61.53 s and 61.48 s are '01:01,53' and '01:01,48')."""
    times = []
    for i, placed in enumerate(rows):
        this = placed.standing
        others = [
            rows[j].standing
            for j in (i - 1, i + 1)
            if 0 <= j < len(rows)
            and rows[j].standing.rank != this.rank
            and rows[j].standing.correct == this.correct
        ]
        for decimals in (1, 2, 3, 6):
            shown = fmt_time(this.duration_seconds, decimals)
            if all(fmt_time(o.duration_seconds, decimals) != shown for o in others):
                break
        times.append(shown)
    return times


def leaderboard_text(board: Leaderboard) -> str:
    rule = board.rule
    if rule.uses_prediction:
        official = (
            f"đáp án chính thức {num(rule.official)}"
            if rule.official is not None
            else "chưa có đáp án chính thức (/dapandudoan): dự đoán chưa được tính"
        )
        how = (
            "<i>Kết quả được công nhận của mỗi thí sinh: nhiều câu đúng hơn xếp trên; bằng "
            "nhau thì dự đoán gần đáp án chính thức hơn xếp trên (không có dự đoán xếp sau), "
            "rồi thời gian làm bài ngắn hơn. Bằng nhau ở mọi tiêu chí thì đồng hạng (dấu =)."
            f"</i>\nCâu hỏi dự đoán: {official}."
        )
    else:
        how = (
            "<i>Kết quả được công nhận của mỗi thí sinh: nhiều câu đúng hơn xếp trên; bằng "
            "nhau thì thời gian làm bài ngắn hơn xếp trên. Cùng số câu đúng và thời gian thì "
            "đồng hạng (dấu =).</i>"
        )
    lines = [
        f"🏆 <b>BẢNG XẾP HẠNG VÒNG {board.round}</b>",
        how,
        f"{num(board.total)} thí sinh · trang {board.page + 1}/{board.pages}",
        "",
    ]
    if not board.rows:
        lines.append(f"Chưa có kết quả vòng {board.round}.")
    for placed, shown in zip(board.rows, page_times(board.rows), strict=True):
        s = placed.standing
        rank = f"{s.rank}=" if placed.tied else f"{s.rank}."
        place = f" — {h(clip(_place(s.place, s.citizen), PLACE_MAX))}" if s.place else ""
        guess = ""
        if rule.uses_prediction:
            guess = ", không dự đoán"
            if s.prediction is not None:
                guess = f", dự đoán {num(s.prediction)}"
        lines.append(
            f"<b>{rank}</b> {h(s.full_name)}{place}: <b>{s.correct}/{s.total}</b> câu"
            f"{guess}, {shown}"
        )
    return "\n".join(lines)


def _place(place: str, citizen: bool) -> str:
    """A citizen lives in 'phường Kim Liên', not in its People's Committee."""
    if citizen and place.startswith("UBND "):
        return place[5:]
    return place


def leaderboard_menu(board: Leaderboard) -> Menu:
    nav = []
    if board.page > 0:
        nav.append(Choice(BTN_FIRST, action("bxh", board.round, 0)))
        nav.append(Choice(BTN_PREV, action("bxh", board.round, board.page - 1)))
    if board.page + 1 < board.pages:
        nav.append(Choice(BTN_NEXT, action("bxh", board.round, board.page + 1)))
        nav.append(Choice(BTN_LAST, action("bxh", board.round, board.pages - 1)))
    other = 2 if board.round == 1 else 1
    rounds = [
        Choice(BTN_REFRESH, action("bxh", board.round, board.page)),
        Choice(f"Vòng {other}", action("bxh", other, 0)),
    ]
    return Menu.of(nav, rounds)


async def _leaderboard_reply(ui: Ui, round_number: int, page: int) -> Reply:
    board = await ui.service.results.leaderboard(round_number, page)
    return Reply(leaderboard_text(board), leaderboard_menu(board))


@CONSOLE.command("bxh", role=Role.ORGANISER, help="Bảng xếp hạng: /bxh (vòng 1), /bxh 2")
async def leaderboard(ui: Ui, request: Request) -> Reply:
    round_number = 2 if request.args and request.args[0] == "2" else 1
    return await _leaderboard_reply(ui, round_number, 0)


@CONSOLE.action("bxh", role=Role.ORGANISER)
async def leaderboard_page(ui: Ui, request: Request) -> Reply:
    """``a:bxh:<round>:<page>``."""
    args = request.args
    round_number = 2 if args and args[0] == "2" else 1
    return await _leaderboard_reply(ui, round_number, _page(args[1] if len(args) > 1 else None))
