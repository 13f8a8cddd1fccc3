"""The process that holds the "scheduler" lease runs the sweeps; the others stand by."""

from __future__ import annotations

import errno
import logging
import os
import socket
import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from storage import leases

log = logging.getLogger(__name__)


class LeaseGuard:
    """Takes, renews and gives up one named lease, on wall-clock time (not the contest
    clock: leases are between processes, whatever time the contest believes it is)."""

    def __init__(self, engine: AsyncEngine, name: str, holder: str, ttl_seconds: float) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder
        self.ttl_seconds = ttl_seconds
        self.holding = False

    async def renew(self) -> tuple[bool, bool]:
        """(held now, newly taken over)."""
        now = datetime.now(UTC)
        held = await leases.try_acquire(self.engine, self.name, self.holder, now, self.ttl_seconds)
        if not held and not self.holding:
            held = await self._take_from_the_dead(now)
        fresh = held and not self.holding
        if fresh:
            log.info("lease %s taken by %s", self.name, self.holder)
        elif self.holding and not held:
            log.warning("lease %s lost by %s", self.name, self.holder)
        self.holding = held
        return held, fresh

    async def _take_from_the_dead(self, now: datetime) -> bool:
        """A process restarted after a crash (kill -9, power cut) finds its predecessor's
        lease still running: if that holder ran on this host and its process is gone, take
        the lease at once instead of waiting it out (deadline results would be late by up
        to the lease's length). A holder on another host is only known dead by its expiry."""
        current = await leases.holder_of(self.engine, self.name)
        if current is None or not holder_is_dead(current[0]):
            return False
        taken = await leases.take_over(
            self.engine, self.name, current[0], self.holder, now, self.ttl_seconds
        )
        if taken:
            log.info("lease %s taken from %s, whose process is gone", self.name, current[0])
        return taken

    async def release(self) -> None:
        if self.holding:
            await leases.release(self.engine, self.name, self.holder)
            self.holding = False


def holder_name() -> str:
    """Who holds a lease or a claim: host, process id and a per-application tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def holder_is_dead(holder: str) -> bool:
    """Whether ``holder`` (a ``holder_name()``) was a process of this host that no longer
    exists. False whenever that cannot be told (another host, another format, a process
    id now taken by a process we may not signal)."""
    host, _, rest = holder.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid() or pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.ESRCH
    return False
