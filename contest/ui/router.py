"""The organisers' console, channel-neutral: commands (``/thongke``), actions (a pressed
choice, ``a:stats:2``), typed input a reply asked for, and uploaded files, each routed to a
screen function that calls the use cases and returns a ``Reply``.

Every route says who may use it (a role). The router checks it, and writes the audit log:
every refused attempt, every failure, and every successful request of a route that does not
record itself (routes that change something record themselves, in their own transaction,
through ``contest.usecases.staff.audit``). A reply that asks for typed input (``expect``)
is remembered per account in the database, so a restart keeps it.

Feature modules register their routes on the module-level ``CONSOLE`` at import
(``contest.ui.console`` imports them all); a channel adapter hands requests to ``Ui``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from contest.errors import ContestError
from contest.model import Account, Role
from contest.ui import texts
from contest.ui.reply import Reply
from contest.usecases.staff import Actor

if TYPE_CHECKING:
    from contest.services import ContestService

log = logging.getLogger(__name__)

ACTION_PREFIX = "a"  # console actions are "a:<name>:<arg>:<arg>…"


@dataclass(frozen=True)
class Upload:
    """A file an organiser sent (already checked for size by the adapter)."""

    filename: str
    content: bytes


@dataclass(frozen=True)
class Request:
    actor: Actor
    args: tuple[str, ...] = ()
    text: str | None = None  # typed input the route asked for
    data: dict[str, Any] = field(default_factory=dict)  # carried by the reply that asked
    upload: Upload | None = None


Screen = Callable[["Ui", Request], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    name: str
    screen: Screen
    role: Role
    writes: bool  # records itself in the audit log, in its own transaction
    help: str | None = None  # for commands: the line in the command menu


class Console:
    """The registry of routes."""

    def __init__(self) -> None:
        self.commands: dict[str, Route] = {}
        self.actions: dict[str, Route] = {}
        self.inputs: dict[str, Route] = {}
        self.uploads: Route | None = None

    def _add(self, table: dict[str, Route], route: Route) -> None:
        if route.name in table:
            raise ValueError(f"route {route.name!r} registered twice")
        table[route.name] = route

    def command(
        self, name: str, *, role: Role, help: str, writes: bool = False
    ) -> Callable[[Screen], Screen]:
        """``/name args…``; ``help`` is its line in the command menu (Vietnamese)."""

        def register(screen: Screen) -> Screen:
            self._add(self.commands, Route(name, screen, role, writes, help))
            return screen

        return register

    def action(self, name: str, *, role: Role, writes: bool = False) -> Callable[[Screen], Screen]:
        """A pressed choice whose action is ``a:<name>:<args…>``."""

        def register(screen: Screen) -> Screen:
            self._add(self.actions, Route(name, screen, role, writes))
            return screen

        return register

    def input(self, kind: str, *, role: Role, writes: bool = False) -> Callable[[Screen], Screen]:
        """Typed text after a reply that asked for it (``Expect(kind)``)."""

        def register(screen: Screen) -> Screen:
            self._add(self.inputs, Route(kind, screen, role, writes))
            return screen

        return register

    def upload(self, *, role: Role, writes: bool = True) -> Callable[[Screen], Screen]:
        """A file sent to the bot."""

        def register(screen: Screen) -> Screen:
            if self.uploads is not None:
                raise ValueError("one upload route only")
            self.uploads = Route("upload", screen, role, writes)
            return screen

        return register

    def menu(self, role: Role) -> list[tuple[str, str]]:
        """(command, help) of every command a role may use, beyond a contestant's."""
        return [
            (route.name, route.help or "")
            for route in self.commands.values()
            if Role.CONTESTANT < route.role <= role
        ]


CONSOLE = Console()


def action(name: str, *args: object) -> str:
    """The action string of a console choice."""
    return ":".join([ACTION_PREFIX, name, *(str(a) for a in args)])


class Ui:
    """Dispatches console requests of one process."""

    def __init__(self, service: ContestService, console: Console = CONSOLE) -> None:
        self.service = service
        self.console = console

    def is_command(self, name: str) -> bool:
        return name in self.console.commands

    async def actor(self, account: Account, name: str | None = None) -> Actor:
        return await self.service.staff.actor(account, name)

    async def command(self, actor: Actor, name: str, args: tuple[str, ...] = ()) -> Reply:
        route = self.console.commands[name]
        return await self._run(route, "/" + name, Request(actor, args))

    async def action(self, actor: Actor, data: str) -> Reply | None:
        """A pressed console choice; None when ``data`` is no console action at all."""
        parts = data.split(":")
        if len(parts) < 2 or parts[0] != ACTION_PREFIX or parts[1] not in self.console.actions:
            return None
        route = self.console.actions[parts[1]]
        return await self._run(route, data, Request(actor, tuple(parts[2:])))

    async def text(self, account: Account, name: str | None, text: str) -> Reply | None:
        """Typed text: the input a previous reply asked for; None when none was asked
        (the text is then the adapter's to handle: a registration answer, a hint)."""
        async with self.service.uow(write=False) as uow:
            state = await uow.dialogues.get(account)
        expect = (state or {}).get("expect")
        if not isinstance(expect, dict) or expect.get("kind") not in self.console.inputs:
            return None
        actor = await self.actor(account, name)
        route = self.console.inputs[str(expect["kind"])]
        carried = expect.get("data")
        data: dict[str, Any] = carried if isinstance(carried, dict) else {}
        return await self._run(route, f"input:{route.name}", Request(actor, (), text, data))

    async def upload(self, actor: Actor, upload: Upload) -> Reply:
        route = self.console.uploads
        if route is None:
            return Reply(texts.error("no_uploads"))
        return await self._run(
            route, f"upload:{upload.filename[:60]}", Request(actor, upload=upload)
        )

    async def cancel_input(self, account: Account) -> None:
        async with self.service.uow() as uow:
            await uow.dialogues.clear(account)
            await uow.commit()

    async def _run(self, route: Route, what: str, request: Request) -> Reply:
        actor = request.actor
        staff = self.service.staff
        if actor.role < route.role:
            await staff.record(actor, route.name, "refused", target=what[:255])
            log.info("console %s refused for %s (%s)", route.name, actor.key, actor.role.name)
            return Reply(texts.refusal(route.role), alert=texts.refusal(route.role))
        try:
            reply = await route.screen(self, request)
        except ContestError as exc:
            await staff.record(
                actor, route.name, "failed", target=what[:255], detail={"error": exc.code}
            )
            message = texts.error(exc.code, **exc.params)
            return Reply(message, alert=message[:190])
        except Exception:
            await staff.record(actor, route.name, "failed", target=what[:255])
            raise
        if not route.writes:
            await staff.record(actor, route.name, "ok", target=what[:255])
        await self._remember(actor.account, reply)
        return reply

    async def _remember(self, account: Account, reply: Reply) -> None:
        if reply.expect is None and not reply.cancel_input:
            return
        # Only the console's own key changes: a channel keeps its own keys in the same
        # state (Zalo: the question a letter answers, the numbered choices shown).
        async with self.service.uow() as uow:
            state = await uow.dialogues.get(account) or {}
            if reply.expect is not None:
                state["expect"] = {"kind": reply.expect.kind, "data": reply.expect.data}
            elif "expect" not in state:
                return
            else:
                del state["expect"]
            if state:
                await uow.dialogues.put(account, state, self.service.clock.now())
            else:
                await uow.dialogues.clear(account)
            await uow.commit()
