"""The work queue of one workload controller: keys in, batches out.

Owns: `KeyQueue` - `add(key)` from synchronous code (store listeners, timer callbacks),
`add_after(key, seconds)` through the shared `TimerHeap`, `wait()` for work and `drain()`
to take every pending key at once (one loop pass).

Invariants:
- Keys collapse: a key added several times before a pass takes it is processed once per
  pass; pass order is first-added order.
- `add` never awaits and never writes anything but the queue itself, so store listeners
  may call it while the store is dispatching an event.
- Delayed keys keep at most one timer per key: a later `add_after` for a key that already
  has an earlier (or equal) deadline is dropped, an earlier one replaces it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

from servicegroup.kubesim.workloads.timers import TimerHeap

K = TypeVar("K", bound=Hashable)


class KeyQueue(Generic[K]):
    def __init__(self, *, timers: TimerHeap) -> None:
        self._timers = timers
        self._pending: dict[K, None] = {}
        self._wake = asyncio.Event()
        # key -> the earliest deadline a timer is pending for
        self._delayed: dict[K, float] = {}

    def add(self, key: K) -> None:
        self._pending[key] = None
        self._wake.set()

    def add_after(self, key: K, seconds: float) -> None:
        if seconds <= 0:
            self.add(key)
            return
        due = self._timers.clock.monotonic() + seconds
        known = self._delayed.get(key)
        if known is not None and known <= due:
            return
        self._delayed[key] = due

        def fire() -> None:
            if self._delayed.get(key) == due:
                del self._delayed[key]
                self.add(key)

        self._timers.call_at(due, fire)

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: object) -> bool:
        return key in self._pending

    @property
    def idle(self) -> bool:
        """Nothing pending now (delayed keys do not count: they are not due)."""
        return not self._pending

    @property
    def delayed(self) -> int:
        return len(self._delayed)

    async def wait(self) -> None:
        """Return once at least one key is pending."""
        while not self._pending:
            self._wake.clear()
            await self._wake.wait()

    def drain(self) -> list[K]:
        """Take every pending key (the next pass's batch)."""
        keys = list(self._pending)
        self._pending.clear()
        self._wake.clear()
        return keys
