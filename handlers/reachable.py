"""A person marked unreachable (they blocked the bot: broadcasts skip them) who writes to
the bot again, or presses any button, is reachable again.

Runs before every other handler (group -1) for every update, so it costs a set lookup and
nothing more: the accounts of persons marked unreachable are kept in memory
(``Outbox.flagged``); only a flagged one is read from the database, and written only if the
mark is still set.
"""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, TypeHandler

from contest.model import Account
from handlers.common import Context, deps

GROUP = -1  # before every other handler; the update then goes on to them


async def seen(update: Update, context: Context) -> None:
    """Anyone who sends anything: clear their unreachable mark if they have one."""
    user = update.effective_user
    if user is None:
        return
    outbox = deps(context).service.outbox
    account = Account.telegram(user.id)
    if outbox.flagged(account):
        await outbox.reachable_again(account)


def handlers() -> list[BaseHandler[Any, Any, Any]]:
    return [TypeHandler(Update, seen)]
