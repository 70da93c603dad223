"""Deadlines on kubesim's injected clock, for every workload controller at once.

Owns: `TimerHeap` - `call_at(due, callback)` / `call_later(seconds, callback)` records a
synchronous callback in one heap keyed by the clock's monotonic time; `run()` is the single
task that sleeps on the injected clock until the earliest deadline and fires everything due.

Invariants:
- One heap and one long-lived task for all controllers: never a task per timer or object.
  While waiting, `run` owns at most one helper task (the clock sleep), always awaited or
  cancelled before `run` moves on or ends.
- Callbacks are synchronous and must not write to the store: they only queue keys (the
  writes happen later in the controllers' own passes).
- A deadline earlier than the one being slept on wakes the runner at once, so a short delay
  scheduled behind a long one is never late; with a `FakeClock` nothing fires until a test
  advances time.
- A deadline already reached fires on the next runner iteration, in deadline order, ties in
  scheduling order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

from servicegroup.kubesim.engine import SimClock


class TimerHeap:
    def __init__(self, *, clock: SimClock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._wake: asyncio.Future[None] | None = None
        self._sleeping_until: float | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> float:
        """Run `callback` once `seconds` of clock time have passed; returns the deadline."""
        due = self.clock.monotonic() + max(0.0, seconds)
        self.call_at(due, callback)
        return due

    def call_at(self, due: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), callback))
        wake = self._wake
        earlier = self._sleeping_until is None or due < self._sleeping_until
        if wake is not None and not wake.done() and earlier:
            wake.set_result(None)

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def fire_due(self) -> int:
        """Run every callback whose deadline has come; returns how many ran."""
        fired = 0
        now = self.clock.monotonic()
        while self._heap and self._heap[0][0] <= now:
            _, _, callback = heapq.heappop(self._heap)
            callback()
            fired += 1
        return fired

    async def _sleep_until(self, due: float) -> None:
        # The delay is read when the sleep starts, not when it is scheduled: the clock may
        # have moved in between (a fake clock stepped by a test).
        await self.clock.sleep(due - self.clock.monotonic())

    async def run(self) -> None:
        """Fire callbacks as their deadlines come, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            self.fire_due()
            self._wake = loop.create_future()
            due = self.next_deadline()
            try:
                if due is None:
                    self._sleeping_until = None
                    await self._wake
                    continue
                self._sleeping_until = due
                sleeper = asyncio.ensure_future(self._sleep_until(due), loop=loop)
                sleeper.set_name("kubesim-workloads-timer-sleep")
                try:
                    await asyncio.wait({sleeper, self._wake}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not sleeper.done():
                        sleeper.cancel()
                        # Let the helper finish unwinding; our own cancellation still
                        # propagates from the wait above.
                        await asyncio.wait({sleeper})
            finally:
                self._wake = None
                self._sleeping_until = None
