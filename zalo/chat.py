"""The Zalo conversation: one update in, the contest's use cases called, plain-text replies out.

Zalo has no buttons, no edits and no contact sharing, so:

* every menu is a numbered list; the actions of the list last sent are kept per account in
  the ``dialogues`` table (key ``menu``), and a typed number picks one;
* each question of an attempt is one message (number, time left, text, A/B/C); the person
  replies with a letter. The question last sent (attempt, position, and Zalo's timestamp of
  that message) is kept per account (key ``exam``): a letter always answers that question,
  and a reply written before that question reached the person (a doubled or late reply) is
  refused with a hint, so it can never land on the wrong question. The use case checks the
  position again (compare-and-set), so a state that fell behind changes nothing either;
* the phone number is typed, checked for the Vietnamese mobile format, and said plainly to
  be unverified.

Commands are typed as text, with or without the slash ("/thi", "thi", "Kết quả"). The
organisers' console (and /gopy, a console route for contestants) goes to the channel-neutral
``Ui``; its replies are rendered here.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import contest.ui.console  # noqa: F401  (registers every console route)
from contest.clock import Clock
from contest.errors import ContestError
from contest.model import Account, Group, Position, Role, UnitKind, age_on
from contest.registration import Step
from contest.rules import ContestRules
from contest.services import ContestService, ExamCard, ExamState, ExamStatus, RegistrationView
from contest.text import fold
from contest.ui import texts
from contest.ui.console.feedback import result_menu, results_menu
from contest.ui.console.round2 import START_ROUND2
from contest.ui.reply import Choice, Menu, Reply
from contest.ui.router import Ui
from zalo import parsing, render
from zalo import texts as ztexts
from zalo.api import ZaloError, ZaloNetworkError

log = logging.getLogger(__name__)

TEXT_EVENT = "message.text.received"
RECENT_MESSAGES = 10_000
SEND_RETRY_SECONDS = 0.5

# Contestants' commands typed as text (with or without "/"); console commands come from
# the console's registry (``/gopy`` among them).
CONTESTANT_COMMANDS = frozenset(
    {
        "start",
        "menu",
        "dangky",
        "thi",
        "ketqua",
        "hoso",
        "thele",
        "huongdan",
        "help",
        "nhacnho",
        "lienket",
    }
)

# Wording written for buttons, as it reads with numbered choices.
_BUTTON_WORDING = [
    (re.compile(r"[Bb]ấm nút “"), "gõ số của mục “"),
    (re.compile(r"bấm “"), "gõ số của mục “"),
    (re.compile(r"Bấm “"), "Gõ số của mục “"),
    (re.compile(r"bằng các nút bên dưới"), "bằng các mục đánh số bên dưới"),
    (re.compile(r"các nút bên dưới"), "các mục đánh số bên dưới"),
    (re.compile(r"bấm nút tương ứng"), "gõ số của mục tương ứng"),
]


def zalo_wording(markup: str) -> str:
    """Texts shared with Telegram speak of buttons: on Zalo they are numbered items."""
    for pattern, replacement in _BUTTON_WORDING:
        markup = pattern.sub(replacement, markup)
    return markup


# Console routes whose answer is a file (Zalo carries none): /xuat, the prizes' XLSX.
FILE_COMMANDS = frozenset({"xuat"})
FILE_ACTIONS = frozenset({"przx"})


@dataclass(frozen=True)
class Incoming:
    """What a Zalo update says, for this adapter."""

    event: str
    account: Account
    chat_id: str
    name: str
    text: str | None
    message_id: str
    date_ms: int | None
    private: bool


def parse_update(update: dict[str, Any]) -> Incoming | None:
    """The update as an Incoming, or None when it is not a message from a person."""
    message = update.get("message")
    if not isinstance(message, dict):
        return None
    sender = message.get("from")
    chat = message.get("chat")
    if not isinstance(sender, dict) or not isinstance(chat, dict):
        return None
    user_id = sender.get("id")
    chat_id = chat.get("id")
    if user_id in (None, "") or chat_id in (None, "") or sender.get("is_bot"):
        return None
    date = message.get("date")
    text = message.get("text")
    return Incoming(
        event=str(update.get("event_name") or ""),
        account=Account.zalo(str(user_id)),
        chat_id=str(chat_id),
        name=str(sender.get("display_name") or "bạn")[:64],
        text=text if isinstance(text, str) else None,
        message_id=str(message.get("message_id") or ""),
        date_ms=int(date) if isinstance(date, int | float) else None,
        private=str(chat.get("chat_type") or "PRIVATE").upper() == "PRIVATE",
    )


def main_menu(registered: bool) -> Menu:
    first = (
        Choice(ztexts.BTN_EXAM, "c:thi") if registered else Choice(ztexts.BTN_REGISTER, "c:dangky")
    )
    return Menu.column(
        [
            first,
            Choice(ztexts.BTN_RESULTS, "c:ketqua"),
            Choice(ztexts.BTN_PROFILE, "c:hoso"),
            Choice(ztexts.BTN_FEEDBACK, "c:gopy"),
            Choice(ztexts.BTN_RULES, "c:thele"),
            Choice(ztexts.BTN_GUIDE, "c:huongdan"),
            Choice(ztexts.BTN_REMINDERS, "c:nhacnho"),
            Choice(ztexts.BTN_LINK, "c:lienket"),
        ]
    )


def _fix_choices() -> list[Choice]:
    return [
        Choice(texts.EDIT_LABELS["birth_date"], "r:edit:birth_date"),
        Choice(texts.EDIT_LABELS["name"], "r:edit:name"),
        Choice(texts.EDIT_LABELS["phone"], "r:edit:phone"),
    ]


def prompt(view: RegistrationView) -> tuple[str, Menu | None]:
    """The question (and its numbered choices) for the step the draft is at."""
    draft = view.draft
    step = draft.step
    if step is Step.CONSENT:
        return ztexts.CONSENT, Menu.column([Choice(texts.BTN_CONSENT, "r:consent")])
    if step is Step.NAME:
        return texts.ASK_NAME, None
    if step is Step.BIRTH_DATE:
        return texts.ASK_BIRTH_DATE, None
    if step is Step.PHONE:
        return ztexts.ASK_PHONE, None
    if step is Step.GROUP:
        born = texts.fmt_date(draft.birth_date) if draft.birth_date else ""
        text = ztexts.ask_group(draft.full_name or "", born, draft.phone or "")
        choices = [
            Choice(texts.BTN_CIVIL_SERVANT, f"r:group:{Group.CIVIL_SERVANT.value}"),
            Choice(texts.BTN_CITIZEN, f"r:group:{Group.CITIZEN.value}"),
            *_fix_choices(),
        ]
        return text, Menu.column(choices)
    if step is Step.UNIT_KIND:
        kinds = (UnitKind.DEPARTMENT, UnitKind.WARD, UnitKind.EDUCATION)
        return texts.ASK_UNIT_KIND, Menu.column(
            [Choice(texts.KIND_NAMES[kind], f"r:kind:{kind.value}") for kind in kinds]
        )
    if step in (Step.UNIT, Step.WARD):
        page = view.page
        assert page is not None
        ward = step is Step.WARD
        text = texts.ask_unit(page, ward=ward).replace(
            "bấm “Xem toàn bộ danh sách”", "chọn “Xem toàn bộ danh sách”"
        )
        what = "ward" if ward else "unit"
        choices = [
            Choice(_short(texts.ward_name(u) if ward else u.name), f"r:{what}:{u.id}")
            for u in page.units
        ]
        query = (page.query or "")[:30]
        if page.page > 0:
            choices.append(Choice(texts.BTN_PREV, _page_action(page.page - 1, query)))
        if page.page + 1 < page.pages:
            choices.append(Choice(texts.BTN_NEXT, _page_action(page.page + 1, query)))
        if page.query:
            choices.append(Choice("📋 Xem toàn bộ danh sách", "r:page:0|"))
        if not ward:
            choices.append(Choice("↩️ Chọn khối khác", "r:back"))
        return text, Menu.column(choices)
    if step is Step.POSITION:
        return texts.ASK_POSITION, Menu.column(
            [
                Choice(texts.BTN_LEADER, f"r:pos:{Position.LEADER.value}"),
                Choice(texts.BTN_STAFF, f"r:pos:{Position.STAFF.value}"),
            ]
        )
    names = view.units or {}
    text = texts.summary(draft, names.get("unit"), names.get("ward"))
    text = text.replace(
        "Nếu đúng, bấm “Xác nhận đăng ký”. Nếu cần sửa, bấm nút tương ứng.",
        ztexts.summary_footer(),
    )
    fields = ["name", "birth_date", "phone", "group"]
    fields += ["unit", "position"] if draft.group is Group.CIVIL_SERVANT else ["ward"]
    choices = [Choice(texts.BTN_CONFIRM, "r:confirm")]
    choices += [Choice(texts.EDIT_LABELS[f], f"r:edit:{f}") for f in fields]
    return text, Menu.column(choices)


def _short(name: str, limit: int = 80) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _page_action(page: int, query: str) -> str:
    """A page of the unit list; the search words ride along (cut to fit an action)."""
    action = f"r:page:{page}|"
    data = fold(query).encode("ascii", "ignore").decode()  # the search is accent-blind
    room = 64 - len(action)
    return action + data[:room]


class ZaloChat:
    """Handles the updates of one Zalo bot (one at a time per chat: see ``dispatch``)."""

    def __init__(
        self,
        service: ContestService,
        ui: Ui,
        api: Any,
        rules: ContestRules,
        clock: Clock,
    ) -> None:
        self.service = service
        self.ui = ui
        self.api = api
        self.rules = rules
        self.clock = clock
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._console_commands = frozenset(ui.console.commands)
        self._names = CONTESTANT_COMMANDS | self._console_commands
        # Whether an account's state holds numbered choices (read with the state): a reply
        # without choices then forgets them, and only then costs a write.
        self._had_menu: dict[str, bool] = {}

    # ------------------------------------------------------------------ entry

    async def handle(self, update: dict[str, Any]) -> None:
        """One update from getUpdates or the webhook."""
        incoming = parse_update(update)
        if incoming is None:
            return
        if incoming.message_id and self._seen(incoming.message_id):
            log.info("a Zalo message delivered again: dropped")
            return
        if not incoming.private:
            # The contest happens in private chats: a command in a group gets a short hint.
            if incoming.text and incoming.text.strip().startswith("/"):
                await self._send_text(incoming.chat_id, ztexts.GROUP_CHAT)
            return
        outbox = self.service.outbox
        if outbox.flagged(incoming.account):
            await outbox.reachable_again(incoming.account)
        if incoming.event != TEXT_EVENT or not incoming.text or not incoming.text.strip():
            await self._not_text(incoming)
            return
        await self._text(incoming, incoming.text.strip())

    def _seen(self, message_id: str) -> bool:
        if message_id in self._recent:
            return True
        self._recent[message_id] = None
        if len(self._recent) > RECENT_MESSAGES:
            self._recent.popitem(last=False)
        return False

    async def _not_text(self, incoming: Incoming) -> None:
        actor = await self.ui.actor(incoming.account, incoming.name)
        if actor.role >= Role.FOCAL:
            await self.reply(incoming, ztexts.NO_UPLOADS)
        else:
            await self.reply(incoming, ztexts.ONLY_TEXT)

    async def _text(self, incoming: Incoming, text: str) -> None:
        state = await self._state(incoming.account)
        command = parsing.command(text)
        if command is None and "expect" not in state:
            command = parsing.bare_command(text, self._names)
        if command is not None:
            await self.command(incoming, command[0], command[1])
            return
        exam = state.get("exam")
        letter = parsing.answer_letter(text)
        if letter is not None and isinstance(exam, dict):
            await self.answer(incoming, exam, letter)
            return
        console_reply = await self.ui.text(incoming.account, incoming.name, text)
        if console_reply is not None:
            await self.show(incoming, console_reply)
            return
        if self.rules.uses_prediction and await self.prediction(incoming, text):
            return
        number = parsing.menu_number(text)
        actions = state.get("menu")
        if number is not None and isinstance(actions, list) and actions:
            if not 1 <= number <= len(actions):
                await self.reply(incoming, ztexts.NUMBER_OUT_OF_RANGE.format(number=number))
                return
            await self.act(incoming, str(actions[number - 1]))
            return
        draft = await self.service.registration.draft_view(incoming.account)
        if draft is not None:
            await self.registration_text(incoming, draft, text)
            return
        code = parsing.link_code(text)
        if code is not None:
            await self.redeem(incoming, code)
            return
        status = await self._open_attempt(incoming.account)
        if status is not None and status.card is not None:
            # A letter without a question on record (the state was lost), or any other text
            # during the attempt: nothing is answered; the question is shown again.
            await self.reply(incoming, ztexts.answer_hint(status.card.position))
            if letter is not None or not isinstance(exam, dict):
                await self.send_card(incoming, status.card)
            return
        if number is not None:
            await self.reply(incoming, ztexts.NO_MENU)
            return
        await self.reply(incoming, ztexts.UNKNOWN_TEXT)

    # ------------------------------------------------------------------ commands

    async def command(self, incoming: Incoming, name: str, args: tuple[str, ...]) -> None:
        handlers: dict[str, Callable[[Incoming, tuple[str, ...]], Awaitable[None]]] = {
            "start": self.start,
            "menu": self.menu,
            "dangky": self.register,
            "thi": self.exam,
            "ketqua": self.results,
            "hoso": self.profile,
            "thele": self.rules_text,
            "huongdan": self.guide,
            "help": self.guide,
            "nhacnho": self.reminders,
            "lienket": self.link,
        }
        handler = handlers.get(name)
        if handler is not None:
            await handler(incoming, args)
            return
        if name in self._console_commands:
            actor = await self.ui.actor(incoming.account, incoming.name)
            if name in FILE_COMMANDS and actor.role >= Role.ORGANISER:
                # Zalo carries no files: say so before the workbook is made for nothing.
                await self.reply(incoming, ztexts.NO_DOCUMENTS)
                return
            await self.show(incoming, await self.ui.command(actor, name, args))
            return
        await self.reply(incoming, ztexts.UNKNOWN_COMMAND)

    async def start(self, incoming: Incoming, args: tuple[str, ...] = ()) -> None:
        profile = await self.service.registration.profile(incoming.account)
        registered = profile is not None
        await self.reply(
            incoming,
            ztexts.welcome(incoming.name, registered, self.rules),
            main_menu(registered),
        )

    async def menu(self, incoming: Incoming, args: tuple[str, ...] = ()) -> None:
        profile = await self.service.registration.profile(incoming.account)
        await self.reply(incoming, ztexts.MAIN_MENU_HEAD, main_menu(profile is not None))

    async def rules_text(self, incoming: Incoming, args: tuple[str, ...] = ()) -> None:
        await self.reply(incoming, texts.rules_text(self.rules))

    async def guide(self, incoming: Incoming, args: tuple[str, ...] = ()) -> None:
        await self.reply(incoming, ztexts.guide(self.rules))

    async def profile(self, incoming: Incoming, args: tuple[str, ...] = ()) -> None:
        found = await self.service.registration.profile(incoming.account)
        if found is None:
            await self.reply(incoming, texts.NOT_REGISTERED, _register_menu())
            return
        await self.reply(incoming, texts.profile_text(found))

    async def results(self, incoming: Incoming, args: tuple[str, ...] = ()) -> None:
        try:
            view = await self.service.results.person_results(incoming.account)
        except ContestError as exc:
            await self.reply(incoming, ztexts.error(exc.code, **exc.params), _register_menu())
            return
        await self.reply(incoming, texts.results_text(view, self.rules.round1), results_menu(view))

    async def reminders(self, incoming: Incoming, args: tuple[str, ...] = ()) -> None:
        await self._reminders(incoming, None)

    async def _reminders(self, incoming: Incoming, wanted: bool | None) -> None:
        try:
            on = await self.service.campaign.set_reminders(incoming.account, wanted)
        except ContestError as exc:
            await self.reply(incoming, ztexts.error(exc.code, **exc.params))
            return
        answer = texts.reminders_state(on)
        await self.reply(incoming, answer.text.replace("Gõ /nhacnho", "Gõ nhacnho"), answer.menu)

    async def register(self, incoming: Incoming, args: tuple[str, ...] = ()) -> None:
        try:
            view = await self.service.registration.begin_registration(incoming.account)
        except ContestError as exc:
            await self.reply(incoming, ztexts.error(exc.code, **exc.params))
            return
        await self.send_prompt(incoming, view)

    # ------------------------------------------------------------------ linking

    async def link(self, incoming: Incoming, args: tuple[str, ...] = ()) -> None:
        """lienket: a code to type in the other channel; lienket <code>: link to it."""
        if args:
            code = parsing.link_code(args[0])
            if code is None:
                await self.reply(incoming, texts.error("link_code_wrong"))
                return
            await self.redeem(incoming, code)
            return
        profile = await self.service.registration.profile(incoming.account)
        if profile is None:
            await self.reply(incoming, texts.link_ask("Telegram"))
            return
        issued = await self.service.linking.issue(incoming.account)
        await self.reply(incoming, texts.link_code(issued.code, issued.minutes))

    async def redeem(self, incoming: Incoming, code: str) -> None:
        try:
            person = await self.service.linking.redeem(incoming.account, code)
        except ContestError as exc:
            await self.reply(incoming, ztexts.error(exc.code, **exc.params))
            return
        await self.reply(incoming, texts.linked(person.full_name), main_menu(True))

    # ------------------------------------------------------------------ registration

    async def send_prompt(self, incoming: Incoming, view: RegistrationView) -> None:
        text, menu = prompt(view)
        await self.reply(incoming, text, menu)

    async def registration_text(
        self, incoming: Incoming, current: RegistrationView, text: str
    ) -> None:
        registration = self.service.registration
        account = incoming.account
        try:
            if current.draft.step is Step.PHONE:
                phone = parsing.vn_mobile(text)
                if phone is None:
                    # A date here corrects the birth date; anything else is no phone.
                    view = await registration.registration_text(account, text)
                else:
                    view = await registration.register_input(account, Step.PHONE, (phone, None))
                    await self.reply(incoming, ztexts.PHONE_SAVED)
            else:
                view = await registration.registration_text(account, text)
        except ContestError as exc:
            await self.reply(incoming, ztexts.error(exc.code, **exc.params))
            if exc.code == "citizen_under_age":
                await self._refuse_under_age(incoming)
                return
            again = await registration.draft_view(account)
            if again is not None and again.draft.step not in (Step.NAME, Step.BIRTH_DATE):
                await self.send_prompt(incoming, again)
            return
        if view.corrected == "birth_date" and view.draft.birth_date is not None:
            await self.reply(incoming, texts.birth_date_corrected(view.draft.birth_date))
        await self.send_prompt(incoming, view)

    async def _refuse_under_age(self, incoming: Incoming) -> None:
        current = await self.service.registration.draft_view(incoming.account)
        if current is None or current.draft.birth_date is None:
            return
        born = current.draft.birth_date
        age = age_on(born, self.service.ctx.today())
        choices = _fix_choices()
        choices.insert(1, Choice(texts.BTN_CIVIL_SERVANT, f"r:group:{Group.CIVIL_SERVANT.value}"))
        await self.reply(
            incoming, texts.under_age(born, age, self.rules.min_age), Menu.column(choices)
        )

    async def registration_action(self, incoming: Incoming, action: str, argument: str) -> None:
        registration = self.service.registration
        account = incoming.account
        try:
            if action == "confirm":
                person = await registration.confirm_registration(account)
                await self.reply(
                    incoming,
                    ztexts.registered(person.full_name, self.rules.round1),
                    Menu.column([Choice(ztexts.BTN_EXAM, "c:thi")]),
                )
                return
            if action == "page":
                page_text, _, search = argument.partition("|")
                view = await registration.unit_page(account, int(page_text), search or None)
            elif action == "consent":
                view = await registration.register_input(account, Step.CONSENT, True)
            elif action == "group":
                view = await registration.register_input(account, Step.GROUP, Group(argument))
            elif action == "kind":
                view = await registration.register_input(
                    account, Step.UNIT_KIND, UnitKind(argument)
                )
            elif action == "unit":
                view = await registration.register_input(account, Step.UNIT, int(argument))
            elif action == "ward":
                view = await registration.register_input(account, Step.WARD, int(argument))
            elif action == "pos":
                view = await registration.register_input(account, Step.POSITION, Position(argument))
            elif action == "back":
                view = await registration.unit_kind_again(account)
            elif action == "edit":
                view = await registration.edit_field(account, argument)
            else:
                raise ContestError("bad_button")
        except ValueError:
            await self.reply(incoming, ztexts.error("bad_button"))
            return
        except ContestError as exc:
            await self.reply(incoming, ztexts.error(exc.code, **exc.params))
            if exc.code == "citizen_under_age":
                await self._refuse_under_age(incoming)
            return
        await self.send_prompt(incoming, view)

    # ------------------------------------------------------------------ exam

    async def _open_attempt(self, account: Account) -> ExamStatus | None:
        """The person's attempt in progress (round 1's, else round 2's), if any."""
        for round_number in (1, 2):
            status = await self.service.exams.exam_status(account, round_number)
            if status.state is ExamState.IN_PROGRESS and status.card is not None:
                return status
            if status.state is ExamState.NOT_REGISTERED:
                return None
        return None

    async def exam(self, incoming: Incoming, args: tuple[str, ...] = ()) -> None:
        status = await self.service.exams.exam_status(incoming.account)
        if status.state not in (ExamState.IN_PROGRESS, ExamState.NOT_REGISTERED):
            # A qualifier in the hall with round 2 open: "thi" resumes it.
            second = await self.service.exams.exam_status(incoming.account, 2)
            if second.state in (ExamState.IN_PROGRESS, ExamState.AWAITING_PREDICTION):
                status = second
        rules = status.round
        if status.state is ExamState.NOT_REGISTERED:
            await self.reply(incoming, texts.NOT_REGISTERED, _register_menu())
        elif status.state is ExamState.IN_PROGRESS:
            assert status.card is not None
            await self.reply(incoming, ztexts.RESUME)
            await self.send_card(incoming, status.card)
        elif status.state is ExamState.AWAITING_PREDICTION:
            assert status.ask is not None
            await self.reply(incoming, texts.prediction_ask(status.ask, self.clock.now()))
        elif status.state is ExamState.LOCKED:
            await self.reply(incoming, texts.account_locked(status.lock_reason))
        elif status.state is ExamState.NOT_OPEN:
            await self.reply(incoming, texts.round_not_open(rules))
        elif status.state is ExamState.CLOSED:
            text = texts.round_closed(rules)
            if status.best is not None:
                text += (
                    f"\nKết quả được công nhận: {texts.best_line(status.best)} "
                    f"(lần thi {status.best.number})."
                )
            await self.reply(incoming, text)
        elif status.state is ExamState.NO_ATTEMPTS_LEFT:
            await self.reply(incoming, texts.no_attempts_left(rules, status.best))
        else:
            best = texts.best_line(status.best) if status.best is not None else None
            await self.reply(
                incoming,
                ztexts.exam_intro(rules, status.attempts_used, best),
                Menu.column([Choice(ztexts.BTN_START_EXAM, "x:start")]),
            )

    async def start_attempt(self, incoming: Incoming, round_number: int = 1) -> None:
        """Start an attempt of the round (or show the open one). Round 2's start is a
        numbered choice of /vong2 once the session code is typed; the service refuses
        anyone not on the confirmed list or without the current code."""
        try:
            card = await self.service.exams.start_attempt(incoming.account, round_number)
        except ContestError as exc:
            await self.reply(incoming, ztexts.error(exc.code, **exc.params))
            return
        await self.send_card(incoming, card)

    async def send_card(self, incoming: Incoming, card: ExamCard) -> None:
        """The question as one message; then it is the question a letter answers."""
        rules = self.rules.round1 if card.round == 1 else self.rules.round2.round
        text = ztexts.card(card, rules, self.clock.now())
        sent_ms = await self._send(incoming.chat_id, text)
        if sent_ms is None:
            return  # not delivered: a letter then answers the question before (refused)
        await self._save(
            incoming.account,
            exam={"attempt": card.attempt_id, "pos": card.position, "sent": sent_ms},
            menu=None,
        )

    async def answer(self, incoming: Incoming, exam: dict[str, Any], letter: int) -> None:
        try:
            attempt_id, position = int(exam["attempt"]), int(exam["pos"])
            sent = exam.get("sent")
        except (KeyError, TypeError, ValueError):
            await self._save(incoming.account, exam=None)
            await self.reply(incoming, ztexts.UNKNOWN_TEXT)
            return
        if incoming.date_ms is not None and isinstance(sent, int) and incoming.date_ms < sent:
            await self.reply(incoming, ztexts.stale_reply(position))
            return
        exams = self.service.exams
        try:
            outcome = await exams.answer(incoming.account, attempt_id, position, letter)
        except ContestError as exc:
            if exc.code == "stale_question":
                await self._show_current(incoming, attempt_id, position)
                return
            await self._save(incoming.account, exam=None)
            await self.reply(incoming, ztexts.error(exc.code, **exc.params))
            return
        if outcome.ask is not None:
            # The answers are in; the attempt ends with the prediction question, typed. The
            # result follows the prediction (or, without one, the deadline, from the outbox).
            await self._save(incoming.account, exam=None)
            answered = outcome.summary.result.total if outcome.summary is not None else None
            await self.reply(
                incoming, texts.prediction_ask(outcome.ask, self.clock.now(), answered=answered)
            )
            return
        if outcome.summary is not None:
            summary = outcome.summary
            await self._save(incoming.account, exam=None)
            head = texts.TIME_UP + "\n\n" if outcome.expired else ""
            shown = await self.reply(
                incoming,
                head + texts.attempt_done(summary, expired=outcome.expired),
                result_menu(summary.result.attempt_id),
            )
            if shown:
                await exams.result_shown(summary.result.attempt_id)
            return
        assert outcome.next_card is not None
        await self.send_card(incoming, outcome.next_card)

    async def prediction(self, incoming: Incoming, text: str) -> bool:
        """Typed text while the person's last attempt waits for its prediction: stored and
        the result shown (True), or a hint on a bad number (True: nothing changed); False
        when no attempt waits for one."""
        try:
            summary = await self.service.exams.predict(incoming.account, text)
        except ContestError as exc:
            await self.reply(incoming, ztexts.error(exc.code, **exc.params))
            return True
        if summary is None:
            return False
        attempt_id = summary.result.attempt_id
        shown = await self.reply(
            incoming,
            texts.prediction_recorded(summary.result.prediction).replace(
                "Kết quả ở tin nhắn bên dưới.", "Kết quả như sau."
            )
            + "\n\n"
            + texts.attempt_done(summary, expired=False),
            result_menu(attempt_id),
        )
        if shown:
            await self.service.exams.result_shown(attempt_id)
        return True

    async def _show_current(self, incoming: Incoming, attempt_id: int, position: int) -> None:
        """The question on record was answered already (its successor was never shown, or
        a reply came twice): show where the attempt really is; nothing is answered."""
        try:
            card = await self.service.exams.current_card(incoming.account, attempt_id)
        except ContestError as exc:
            await self._save(incoming.account, exam=None)
            await self.reply(incoming, ztexts.error(exc.code, **exc.params))
            return
        await self.reply(incoming, ztexts.already_answered(position))
        await self.send_card(incoming, card)

    # ------------------------------------------------------------------ choices

    async def act(self, incoming: Incoming, action: str) -> None:
        """A numbered choice, by its action."""
        prefix, _, rest = action.partition(":")
        if prefix == "c":
            name, _, arg = rest.partition(":")
            await self.command(incoming, name, (arg,) if arg else ())
        elif prefix == "r":
            name, _, argument = rest.partition(":")
            await self.registration_action(incoming, name, argument)
        elif action == "i:exam":  # «Vào thi» under a reminder
            await self.exam(incoming)
        elif action == "x:start":
            await self.start_attempt(incoming)
        elif action == START_ROUND2:
            await self.start_attempt(incoming, 2)
        elif action in ("n:on", "n:off"):
            await self._reminders(incoming, action == "n:on")
        elif prefix == "a":
            actor = await self.ui.actor(incoming.account, incoming.name)
            if rest.split(":", 1)[0] in FILE_ACTIONS and actor.role >= Role.ORGANISER:
                await self.reply(incoming, ztexts.NO_DOCUMENTS)
                return
            answer = await self.ui.action(actor, action)
            if answer is None:
                await self.reply(incoming, ztexts.error("bad_button"))
            else:
                await self.show(incoming, answer)
        else:
            await self.reply(incoming, ztexts.error("bad_button"))

    async def show(self, incoming: Incoming, answer: Reply) -> None:
        """A console reply: its text (or its alert) with numbered choices."""
        text = answer.text or answer.alert or ""
        if text:
            await self.reply(incoming, text, answer.menu)
        if answer.document is not None:
            await self.reply(incoming, ztexts.NO_DOCUMENTS)
        if answer.later is not None:
            await self.show(incoming, await answer.later())

    # ------------------------------------------------------------------ sending

    async def reply(self, incoming: Incoming, markup: str, menu: Menu | None = None) -> bool:
        """Send a reply (split to Zalo's length) and remember its numbered choices (a reply
        without choices forgets those of an earlier one). True when it was delivered."""
        messages, actions = render.render(zalo_wording(markup), menu)
        delivered = True
        for message in messages:
            if await self._send(incoming.chat_id, message) is None:
                delivered = False
                break
        if actions or self._had_menu.get(incoming.account.user_id):
            await self._save(incoming.account, menu=actions or None)
        return delivered

    async def _send_text(self, chat_id: str, markup: str) -> None:
        for message in render.render(zalo_wording(markup))[0]:
            await self._send(chat_id, message)

    async def _send(self, chat_id: str, text: str) -> int | None:
        """Send one message; Zalo's timestamp of it (ms), 0 when Zalo gave none, None when
        it was not delivered. A transient failure is tried once more."""
        for attempt in range(2):
            try:
                result = await self.api.send_message(chat_id, text)
            except ZaloError as exc:
                if exc.transient and attempt == 0:
                    await asyncio.sleep(SEND_RETRY_SECONDS)
                    continue
                log.info("a Zalo reply failed: %s %s", exc.code, exc.description[:80])
                return None
            except ZaloNetworkError as exc:
                if attempt == 0:
                    await asyncio.sleep(SEND_RETRY_SECONDS)
                    continue
                log.info("a Zalo reply failed: %s", exc.kind)
                return None
            date = result.get("date") if isinstance(result, dict) else None
            return int(date) if isinstance(date, int | float) else 0
        return None

    # ------------------------------------------------------------------ state

    async def _state(self, account: Account) -> dict[str, Any]:
        async with self.service.uow(write=False) as uow:
            state = await uow.dialogues.get(account)
        state = state if isinstance(state, dict) else {}
        self._had_menu[account.user_id] = bool(state.get("menu"))
        return state

    async def _save(self, account: Account, **changes: Any) -> None:
        """Merge ``changes`` into the account's dialogue state (None removes a key); the
        console's own key (``expect``) is left as it is."""
        async with self.service.uow() as uow:
            state = await uow.dialogues.get(account) or {}
            for key, value in changes.items():
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = value
            if state:
                await uow.dialogues.put(account, state, self.clock.now())
            else:
                await uow.dialogues.clear(account)
            await uow.commit()
        if "menu" in changes:
            self._had_menu[account.user_id] = bool(changes["menu"])


def _register_menu() -> Menu:
    return Menu.column([Choice(ztexts.BTN_REGISTER, "c:dangky")])
