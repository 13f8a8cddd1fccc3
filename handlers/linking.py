"""/lienket on Telegram: a one-time code to type on Zalo (the same person there), or
``/lienket <code>`` to link this Telegram account to a person registered on Zalo."""

from __future__ import annotations

import re
from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CommandHandler

from contest.errors import ContestError
from contest.ui import texts
from handlers.common import Context, deps, reply, user_id

_CODE = re.compile(r"^\d{6}$")


async def link(update: Update, context: Context) -> None:
    """/lienket [code]."""
    service = deps(context).service
    account = user_id(update)
    args = context.args or []
    if args:
        code = args[0].strip()
        try:
            if not _CODE.match(code):
                raise ContestError("link_code_wrong")
            person = await service.linking.redeem(account, code)
        except ContestError as exc:
            await reply(update, texts.error(exc.code, **exc.params))
            return
        await reply(update, texts.linked(person.full_name))
        return
    if await service.registration.profile(account) is None:
        await reply(update, texts.link_ask("Zalo"))
        return
    try:
        issued = await service.linking.issue(account)
    except ContestError as exc:
        await reply(update, texts.error(exc.code, **exc.params))
        return
    await reply(update, texts.link_code(issued.code, issued.minutes))


def handlers() -> list[BaseHandler[Any, Any, Any]]:
    return [CommandHandler("lienket", link)]
