"""The process that holds the "scheduler" lease runs the sweeps; the others stand by."""

from __future__ import annotations

import logging
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
        held = await leases.try_acquire(
            self.engine, self.name, self.holder, datetime.now(UTC), self.ttl_seconds
        )
        fresh = held and not self.holding
        if fresh:
            log.info("lease %s taken by %s", self.name, self.holder)
        elif self.holding and not held:
            log.warning("lease %s lost by %s", self.name, self.holder)
        self.holding = held
        return held, fresh

    async def release(self) -> None:
        if self.holding:
            await leases.release(self.engine, self.name, self.holder)
            self.holding = False
