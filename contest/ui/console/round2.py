"""Round 2 in the console: /vongloai (the proposed qualifiers, a tie at the cut shown with
the rule that decided it, confirmation), /mavong2 (the session code), /phongthi (the hall,
live), and the contestants' /vong2 (typing the code, then «Bắt đầu làm bài»)."""

from __future__ import annotations

from datetime import datetime

import contest.ui.round2_notices  # noqa: F401  (registers the notices of round 2 and prizes)
from contest.errors import ContestError
from contest.model import Role
from contest.ports import PersonLabel
from contest.ports_round2 import HallSeat
from contest.round2 import CutTie, rule_words
from contest.scoring import Ranked
from contest.ui import texts
from contest.ui.console.stats import escaped, when
from contest.ui.markup import h
from contest.ui.reply import Choice, Expect, Menu, Reply
from contest.ui.round2_notices import fmt_count, round2_when_where
from contest.ui.router import CONSOLE, Request, Ui, action
from contest.usecases.rounds import CODE_TRIES, CODE_WINDOW, MODE_ALL, MODE_CUT, Proposal

MESSAGE_LIMIT = 3900  # a chat message holds 4,096 characters
START_ROUND2 = "x:start2"  # the exam adapter's «Bắt đầu» of round 2

texts.ERRORS.update(
    {
        "round1_not_closed": "Vòng 1 chưa kết thúc (kết thúc lúc {closes}). Danh sách vào "
        "vòng 2 được lập sau khi vòng 1 kết thúc.",
        "prediction_official_missing": "Thể lệ xếp hạng dùng câu hỏi dự đoán: Ban Tổ chức "
        "cần nhập đáp án chính thức bằng lệnh /dapandudoan &lt;số&gt; trước khi lập danh sách thí "
        "sinh vào vòng 2. Không có gì thay đổi.",
        "round1_attempts_open": "Còn {count} bài thi vòng 1 đang làm dở (bắt đầu trước giờ "
        "kết thúc). Vui lòng chờ các bài này được nộp rồi gõ /vongloai lại.",
        "qualifiers_already_confirmed": "Danh sách vào vòng 2 đã được xác nhận trước đó; "
        "không có gì thay đổi. Gõ /vongloai để xem.",
        "qualifiers_stale": "Kết quả vòng 1 đã thay đổi kể từ khi xem danh sách (ví dụ có "
        "câu hỏi được sửa đáp án). Không có gì thay đổi. Gõ /vongloai để xem danh sách mới.",
        "no_qualifiers": "Không có thí sinh nào đạt điều kiện vào vòng 2; không có gì để xác nhận.",
        "code_format": "Mã phòng thi gồm 4–12 chữ cái không dấu hoặc chữ số, ví dụ: "
        "/mavong2 DD2024. Không có gì thay đổi.",
        "code_wrong": "❌ Mã phòng thi không đúng. Bạn còn {left} lần nhập thử trong 10 phút. "
        "Vui lòng kiểm tra lại mã Ban Tổ chức công bố tại phòng thi.",
        "code_wrong_last": "❌ Mã phòng thi không đúng. Bạn đã nhập sai quá số lần cho phép; "
        "vui lòng thử lại sau {minutes} phút hoặc báo cán bộ coi thi.",
        "code_rate_limited": "⛔ Bạn đã nhập sai mã phòng thi {tries} lần trong 10 phút. Vui "
        "lòng thử lại sau {minutes} phút hoặc báo cán bộ coi thi.",
        "round2_not_registered": texts.NOT_REGISTERED,
        "round2_not_qualified": "Bạn không có tên trong danh sách thí sinh thi vòng 2.",
        "round2_not_open": "Vòng 2 chưa bắt đầu. Gõ /vong2 để xem thời gian thi.",
        "round2_closed": "Vòng 2 đã kết thúc.",
        "round2_done": "Bạn đã làm bài thi vòng 2 (mỗi thí sinh 01 lượt).",
        "round2_code_not_set": "Ban Tổ chức chưa mở phòng thi vòng 2. Vui lòng chờ hướng dẫn "
        "tại hội trường rồi gõ /vong2.",
        "round2_code_needed": "Bạn cần nhập mã phòng thi trước khi làm bài. Gõ /vong2.",
    }
)

USAGE_CODE = (
    "Cách dùng: /mavong2 &lt;mã phòng thi&gt;, ví dụ: /mavong2 DD2024 (4–12 chữ cái không dấu "
    "hoặc chữ số). Thí sinh vòng 2 phải nhập đúng mã này trước khi làm bài; đặt mã mới thì "
    "mã cũ hết hiệu lực với người chưa nhập."
)


def _name(labels: dict[int, PersonLabel], person_id: int) -> str:
    label = labels.get(person_id)
    if label is None:
        return f"#{person_id}"
    place = f" ({h(label.place)})" if label.place else ""
    return h(label.full_name) + place


def _line(entry: Ranked, labels: dict[int, PersonLabel]) -> str:
    r = entry.result
    return (
        f"{entry.rank}. {_name(labels, r.person_id)} — {r.correct}/{r.total}, "
        f"{texts.fmt_duration(r.duration_seconds)}"
    )


def tie_text(tie: CutTie, labels: dict[int, PersonLabel], rule_text: str, what: str) -> str:
    """A tie across a cut, with the rule that decided it."""
    shared = tie.inside[0].rank
    lines = [
        f"⚖️ <b>Đồng hạng ở ranh giới {what}</b>: {len(tie.inside) + len(tie.outside)} thí "
        f"sinh cùng hạng {shared} (bằng nhau theo quy tắc: {rule_text.rsplit(', rồi ', 1)[0]}).",
        "Quy tắc đã phân định theo thời điểm nộp bài sớm hơn:",
    ]
    lines += [f"  ✔️ {_line(e, labels)}" for e in tie.inside]
    lines += [f"  ✖️ {_line(e, labels)}" for e in tie.outside]
    return "\n".join(lines)


def _fit(lines: list[str], tail: list[str]) -> str:
    """Lines, cut short (with a note) so that they and the tail fit one message."""
    room = MESSAGE_LIMIT - len("\n".join(tail)) - 60
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        if used + len(line) + 1 > room:
            kept.append(f"… và {len(lines) - index} dòng nữa (xem đủ trong tệp /xuat).")
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept + tail)


def proposal_reply(ui: Ui, proposal: Proposal) -> Reply:
    rules = ui.service.rules.round2
    rule_text = rule_words(proposal.rule)
    if proposal.confirmed:
        first = proposal.confirmed[0]
        lines = [
            "<b>✅ DANH SÁCH THÍ SINH VÀO VÒNG 2 (đã xác nhận)</b>",
            f"Xác nhận lúc {when(first.confirmed_at)}: {len(proposal.confirmed)} thí sinh.",
            "",
        ]
        lines += [f"{c.rank}. {_name(proposal.labels, c.person_id)}" for c in proposal.confirmed]
        return Reply(_fit(lines, ["", round2_when_where(ui.service.rules)]))
    head = [
        "<b>🎯 DANH SÁCH THÍ SINH VÀO VÒNG 2 (đề xuất)</b>",
        f"Quy tắc xếp hạng: {rule_text}.",
        f"{fmt_count(proposal.ranked)} thí sinh có kết quả vòng 1 (không kể tài khoản bị "
        f"khóa); {fmt_count(proposal.eligible)} thí sinh trả lời đúng từ "
        f"{round(rules.min_ratio * 100)}% trở lên. Lấy {rules.qualifiers} thí sinh.",
        "",
    ]
    lines = head + [_line(e, proposal.labels) for e in proposal.qualified]
    tail: list[str] = []
    if proposal.tie is not None:
        tail += ["", tie_text(proposal.tie, proposal.labels, rule_text, "vào vòng 2")]
    if not proposal.qualified:
        return Reply("\n".join([*head, "Không có thí sinh nào đạt điều kiện vào vòng 2."]))
    tail += [
        "",
        "Sau khi xác nhận, mỗi thí sinh vào vòng 2 nhận thông báo thời gian, địa điểm thi; "
        "các thí sinh khác nhận kết quả chung cuộc vòng 1 và nhóm xếp hạng.",
    ]
    rows = [
        [
            Choice(
                f"✅ Xác nhận {len(proposal.qualified)} thí sinh (theo quy tắc)",
                action("q2ok", proposal.digest_cut, MODE_CUT),
            )
        ]
    ]
    if proposal.tie is not None:
        rows.append(
            [
                Choice(
                    f"✅ Xác nhận {len(proposal.with_ties)} thí sinh (lấy cả người đồng hạng)",
                    action("q2ok", proposal.digest_all, MODE_ALL),
                )
            ]
        )
    rows.append([Choice("🔄 Cập nhật", action("q2"))])
    return Reply(_fit(lines, tail), Menu.of(*rows))


@CONSOLE.command(
    "vongloai", role=Role.ORGANISER, help="Danh sách thí sinh vào vòng 2: xem, xác nhận"
)
async def qualification(ui: Ui, request: Request) -> Reply:
    try:
        proposal = await ui.service.rounds.proposal()
    except ContestError as exc:
        raise escaped(exc) from None
    return proposal_reply(ui, proposal)


@CONSOLE.action("q2", role=Role.ORGANISER)
async def qualification_again(ui: Ui, request: Request) -> Reply:
    return await qualification(ui, request)


@CONSOLE.action("q2ok", role=Role.ORGANISER, writes=True)
async def confirm(ui: Ui, request: Request) -> Reply:
    if len(request.args) != 2:
        raise ContestError("bad_button")
    digest, mode = request.args
    try:
        done = await ui.service.rounds.confirm_qualifiers(request.actor, digest, mode)
    except ContestError as exc:
        raise escaped(exc) from None
    return Reply(
        f"✅ Đã xác nhận danh sách <b>{done.qualifiers}</b> thí sinh vào vòng 2.\n"
        f"Đang gửi thông báo tới {done.qualifiers} thí sinh vào vòng 2 và kết quả chung "
        f"cuộc vòng 1 tới {fmt_count(done.others)} thí sinh khác. Gõ /vongloai để xem lại "
        "danh sách, /mavong2 để đặt mã phòng thi."
    )


@CONSOLE.command(
    "mavong2", role=Role.ORGANISER, writes=True, help="Đặt mã phòng thi vòng 2: /mavong2 <mã>"
)
async def session_code(ui: Ui, request: Request) -> Reply:
    if not request.args:
        set_at = await ui.service.rounds.code_set_at()
        state = f"Mã hiện tại được đặt lúc {when(set_at)}." if set_at else "Chưa đặt mã."
        return Reply(f"{state}\n{USAGE_CODE}")
    try:
        code = await ui.service.rounds.set_code(request.actor, " ".join(request.args))
    except ContestError as exc:
        raise escaped(exc) from None
    return Reply(
        f"🔑 Đã đặt mã phòng thi vòng 2: <code>{h(code)}</code>.\n"
        "Công bố mã này tại hội trường. Thí sinh gõ /vong2 rồi nhập mã để bắt đầu làm bài "
        f"(sai quá {CODE_TRIES} lần trong {int(CODE_WINDOW.total_seconds() // 60)} phút thì "
        "phải chờ). Gõ /phongthi để theo dõi phòng thi."
    )


def seat_line(seat: HallSeat, now: datetime) -> str:
    name = h(seat.full_name)
    if seat.status is None:
        typed = " (đã nhập mã)" if seat.code_ok_at is not None else ""
        return f"{seat.rank}. {name} — ⏳ chưa bắt đầu{typed}"
    if seat.status == "in_progress":
        assert seat.deadline_at is not None
        left = (seat.deadline_at - now).total_seconds()
        if left <= 0:
            return f"{seat.rank}. {name} — ⌛ hết giờ, đang chấm"
        return f"{seat.rank}. {name} — ✍️ đang làm, còn {texts.fmt_clock(left)}"
    return (
        f"{seat.rank}. {name} — ✅ đã nộp: {seat.correct}/{seat.total}, "
        f"{texts.fmt_duration(seat.duration_seconds or 0)}"
    )


@CONSOLE.command("phongthi", role=Role.ORGANISER, help="Phòng thi vòng 2: ai đã bắt đầu, đã nộp")
async def hall(ui: Ui, request: Request) -> Reply:
    seats = await ui.service.rounds.hall()
    now = ui.service.clock.now()
    if not seats:
        return Reply("Chưa có danh sách thí sinh vào vòng 2 được xác nhận. Gõ /vongloai.")
    set_at = await ui.service.rounds.code_set_at()
    done = sum(1 for s in seats if s.status not in (None, "in_progress"))
    busy = sum(1 for s in seats if s.status == "in_progress")
    head = [
        f"<b>🏛 PHÒNG THI VÒNG 2</b> — {when(now)}",
        f"Mã phòng thi: đặt lúc {when(set_at)}."
        if set_at
        else "Mã phòng thi: chưa đặt (gõ /mavong2 &lt;mã&gt;).",
        f"Đã nộp {done} · đang làm {busy} · chưa bắt đầu {len(seats) - done - busy} "
        f"(tổng {len(seats)} thí sinh).",
        "",
    ]
    menu = Menu.of([Choice("🔄 Cập nhật", action("hall"))])
    return Reply(_fit(head + [seat_line(s, now) for s in seats], []), menu)


@CONSOLE.action("hall", role=Role.ORGANISER)
async def hall_again(ui: Ui, request: Request) -> Reply:
    return await hall(ui, request)


# ------------------------------------------------------------------ contestants


CANCEL_CODE = Choice("✖️ Thôi", action("r2x"))


async def _entry(ui: Ui, request: Request) -> Reply:
    rules = ui.service.rules
    r2 = rules.round2.round
    entry = await ui.service.rounds.entry(request.actor.account)
    state = entry.state
    if state == "code_needed":
        return Reply(
            "<b>📝 VÒNG 2</b>\n\nVui lòng gõ <b>mã phòng thi</b> do Ban Tổ chức công bố tại "
            "hội trường rồi gửi.",
            Menu.of([CANCEL_CODE]),
            expect=Expect("r2code"),
        )
    if state == "ready":
        return Reply(
            "✅ Mã phòng thi đúng.\n\n"
            f"<b>📝 VÒNG 2</b>: {r2.questions} câu hỏi, làm trong {r2.minutes} phút, "
            f"{r2.attempts:02d} lượt làm bài. Thời gian tính từ khi bấm “Bắt đầu làm bài”; "
            "hết giờ, bài được nộp tự động.",
            Menu.of([Choice(texts.BTN_START_EXAM, START_ROUND2)]),
        )
    if state == "in_progress":
        return Reply(
            "Bạn đang làm dở bài thi vòng 2 (thời gian vẫn tính).",
            Menu.of([Choice("▶️ Làm tiếp", START_ROUND2)]),
        )
    if state == "not_open":
        return Reply(f"Vòng 2 chưa bắt đầu.\n{round2_when_where(rules)}")
    return Reply(texts.error(f"round2_{state}"))


@CONSOLE.command("vong2", role=Role.CONTESTANT, writes=True, help="Vào thi vòng 2")
async def round2_entry(ui: Ui, request: Request) -> Reply:
    """A qualifier's way in: the code (typed after, or given with the command), then the
    «Bắt đầu» button of the exam adapter."""
    if request.args:
        return await _typed(ui, request, " ".join(request.args))
    return await _entry(ui, request)


@CONSOLE.input("r2code", role=Role.CONTESTANT, writes=True)
async def code_typed(ui: Ui, request: Request) -> Reply:
    return await _typed(ui, request, request.text or "")


async def _typed(ui: Ui, request: Request, code: str) -> Reply:
    try:
        await ui.service.rounds.enter_code(request.actor.account, code)
    except ContestError as exc:
        message = texts.error(exc.code, **escaped(exc).params)
        if exc.code == "code_wrong":  # the next text is the next try
            return Reply(message, Menu.of([CANCEL_CODE]), expect=Expect("r2code"))
        return Reply(message)
    return await _entry(ui, request)


@CONSOLE.action("r2x", role=Role.CONTESTANT, writes=True)
async def code_cancelled(ui: Ui, request: Request) -> Reply:
    return Reply("Đã dừng nhập mã phòng thi. Gõ /vong2 khi bạn sẵn sàng.")
