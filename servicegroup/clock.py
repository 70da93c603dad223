"""Time as an injected dependency.

Every component that waits or measures time takes a `Clock`. Production code gets
`RealClock`; tests get `FakeClock` and step time explicitly, so no test sleeps to wait
for a timer.

Invariants of `FakeClock`:
- `monotonic()` only moves when `advance()` / `set()` is called.
- `advance()` resolves, in deadline order, every pending `sleep()` whose deadline is
  reached; sleepers resume on the next event-loop iterations, not inside `advance()`.
- A cancelled `sleep()` leaves no waiter behind.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Monotonic time for intervals, wall time for timestamps, and sleeping."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def now(self) -> datetime:
        """Timezone-aware UTC wall-clock time."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller for `seconds` of this clock's time."""
        ...


class RealClock:
    """The system clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when a test says so."""

    def __init__(self, *, start: float = 1000.0, wall_start: datetime | None = None) -> None:
        self._now = start
        self._start = start
        self._wall_start = wall_start or datetime(2026, 1, 1, tzinfo=UTC)
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self._now

    def now(self) -> datetime:
        return self._wall_start + timedelta(seconds=self._now - self._start)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        await future

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (cancelled ones excluded)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_deadline(self) -> float | None:
        """The earliest pending sleep deadline, if any."""
        for deadline, _, future in sorted(self._sleepers):
            if not future.done():
                return deadline
        return None

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has come."""
        if seconds < 0:
            raise ValueError("a clock never goes backwards")
        self.set(self._now + seconds)

    def set(self, monotonic: float) -> None:
        """Move time forward to an absolute monotonic reading."""
        if monotonic < self._now:
            raise ValueError("a clock never goes backwards")
        self._now = monotonic
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
