"""A tiny keyed work queue for kubesim's internal controllers (GC, namespaces, CRDs).

Owns: `WorkLoop` - `add(key)` from synchronous code (store listeners), `add_after(key,
seconds)` for delayed re-checks, and `run(process)` for the one task that drains it.

Invariants:
- A key queued several times before it is processed is processed once (keys collapse).
- `add` never writes to the store and never awaits: store listeners call it while the store
  is dispatching an event, and the processing happens later in the controller's own task.
- Delays use loop timer callbacks, not tasks: nothing to leak when the loop stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkLoop(Generic[K]):
    def __init__(self) -> None:
        self._pending: dict[K, None] = {}
        self._wake = asyncio.Event()
        self._timers: set[asyncio.TimerHandle] = set()

    def add(self, key: K) -> None:
        self._pending[key] = None
        self._wake.set()

    def add_after(self, key: K, seconds: float) -> None:
        if seconds <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            self.add(key)

        handle = loop.call_later(seconds, fire)
        self._timers.add(handle)

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def idle(self) -> bool:
        """Nothing queued and no delayed key pending."""
        return not self._pending and not self._timers

    async def run(self, process: Callable[[K], None]) -> None:
        """Process keys forever (until cancelled), in the order they were first queued."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._pending:
                    key = next(iter(self._pending))
                    del self._pending[key]
                    process(key)
                    # Let request handlers run between keys of a long backlog.
                    await asyncio.sleep(0)
        finally:
            for handle in self._timers:
                handle.cancel()
            self._timers.clear()
