"""/dapandudoan: the prediction question's official figure, entered by an organiser once
round 1 is over (refused before, with when it may be); shows how many attempts have a
prediction. Audited in its transaction (``contest.usecases.predictions``)."""

from __future__ import annotations

from contest.errors import ContestError
from contest.model import Role
from contest.ui import texts
from contest.ui.console.stats import escaped
from contest.ui.markup import h
from contest.ui.reply import Reply
from contest.ui.router import CONSOLE, Request, Ui
from contest.ui.texts import fmt_count, fmt_dt
from contest.usecases.predictions import MAX_PREDICTION, PredictionView

USAGE = (
    "Cách dùng: /dapandudoan <số>, ví dụ: /dapandudoan 1234 — con số chính thức của câu "
    "hỏi dự đoán vòng 1 (số nguyên từ 0 đến "
    f"{MAX_PREDICTION:,}".replace(",", ".")
    + "). Nhập lại để sửa; mỗi lần đều được ghi nhật ký."
)

texts.ERRORS.update(
    {
        "prediction_official_locked": "Danh sách thí sinh vào vòng 2 đã được xác nhận theo "
        "đáp án chính thức đang có, nên không thể nhập lại đáp án nữa. Không có gì thay đổi.",
        "prediction_off": "Thể lệ đang áp dụng không dùng câu hỏi dự đoán (tie_break = "
        '["time"] trong tệp cấu hình): không có đáp án dự đoán để nhập.',
        "prediction_round_open": "Vòng 1 chưa kết thúc: vòng thi đóng lúc {closes} và bài thi "
        "cuối cùng có thể kéo dài (kể cả câu hỏi dự đoán) đến {until}. Vui lòng nhập đáp án "
        "dự đoán sau thời điểm đó. Chưa có gì thay đổi.",
        "prediction_official_invalid": "“{text}” không phải số nguyên hợp lệ. " + h(USAGE),
    }
)


def view_text(view: PredictionView, *, saved: bool) -> str:
    lines = ["<b>❓ CÂU HỎI DỰ ĐOÁN — VÒNG 1</b>", f"<i>{h(view.question)}</i>", ""]
    if saved:
        lines.append(f"✅ Đã lưu đáp án chính thức: <b>{fmt_count(view.official or 0)}</b>.")
        if view.previous is not None and view.previous != view.official:
            lines.append(f"(Thay cho con số đã nhập trước đó: {fmt_count(view.previous)}.)")
        lines.append(
            "Bảng xếp hạng, danh sách vào vòng 2 và tệp xuất dữ liệu từ nay xếp theo con số này."
        )
    elif view.official is None:
        lines.append("Chưa có đáp án chính thức.")
    else:
        lines.append(f"Đáp án chính thức đang dùng: <b>{fmt_count(view.official)}</b>.")
    missing = view.attempts - view.with_prediction
    lines += [
        "",
        f"Lần thi đã hoàn thành: {fmt_count(view.attempts)}; có dự đoán: "
        f"{fmt_count(view.with_prediction)}; không có dự đoán: {fmt_count(missing)}.",
    ]
    if not saved:
        lines += ["", f"Nhập được từ {fmt_dt(view.open_until)}. " + h(USAGE)]
    return "\n".join(lines)


@CONSOLE.command(
    "dapandudoan",
    role=Role.ORGANISER,
    writes=True,
    help="Nhập đáp án câu hỏi dự đoán vòng 1: /dapandudoan <số>",
)
async def official(ui: Ui, request: Request) -> Reply:
    predictions = ui.service.predictions
    try:
        if not request.args:
            return Reply(view_text(await predictions.overview(), saved=False))
        view = await predictions.set_official(request.actor, " ".join(request.args))
    except ContestError as exc:
        raise escaped(exc) from None
    return Reply(view_text(view, saved=True))
