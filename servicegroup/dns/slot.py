"""An informer whose label selector changes over time, switched without a gap.

Owns: `SelectorSlot` - the serving informer of one resource, and the pending one warming up
for a new selector.

Invariants:
- `selector` is what the serving cache was listed with (None: nothing is watched, the cache
  is empty). A new selector gets a new informer next to the old one; the old one keeps
  serving until the new one has synced, then is stopped. A pending informer whose selector is
  no longer wanted is stopped at once.
- `want()` is synchronous and starts at most one informer; its tasks (named) go into the
  caller's TaskGroup, and are cancelled when the informer is stopped.
- A stopped informer's objects are taken off `servicegroup_informer_cached_objects`
  (the informer itself leaves its last count on the gauge when its task is cancelled).
- `on_change` is called whenever the serving cache is replaced and on every change the
  serving or pending informer's handler reports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from structlog.typing import FilteringBoundLogger

from servicegroup.dns.transforms import change_handler
from servicegroup.informers.informer import SharedInformer
from servicegroup.informers.transforms import Transform
from servicegroup.kube.resources import ResourceRef
from servicegroup.metrics import Metrics

InformerMaker = Callable[[ResourceRef, str | None, str | None, Transform], SharedInformer]


class Cache(Protocol):
    """What the view reads from a cache (an informer's store fits)."""

    def get(self, key: str, /) -> dict[str, Any] | None: ...

    def list(self) -> list[dict[str, Any]]: ...


class _EmptyStore:
    def get(self, key: str, /) -> dict[str, Any] | None:
        return None

    def list(self) -> list[dict[str, Any]]:
        return []


_EMPTY = _EmptyStore()


class _Running:
    """An informer and the tasks that run it and report its sync."""

    def __init__(self, informer: SharedInformer, *tasks: asyncio.Task[None]) -> None:
        self.informer = informer
        self.tasks = tasks


class SelectorSlot:
    """The informer of one resource whose label selector changes over time.

    `selector` is the one the serving cache was made with (None: nothing is watched and the
    cache is empty); a pending informer for a new selector serves only once it has synced.
    """

    def __init__(
        self,
        *,
        ref: ResourceRef,
        transform: Transform,
        make: InformerMaker,
        on_change: Callable[[], None],
        metrics: Metrics,
        logger: FilteringBoundLogger,
    ) -> None:
        self.ref = ref
        self._log = logger
        self._transform = transform
        self._make = make
        self._on_change = on_change
        self._metrics = metrics
        self.selector: str | None = None
        self._active: _Running | None = None
        self._pending_selector: str | None = None
        self._pending: _Running | None = None

    @property
    def store(self) -> Cache:
        """The serving cache (an informer store, or an empty one)."""
        return self._active.informer.store if self._active is not None else _EMPTY

    @property
    def pending_selector(self) -> str | None:
        return self._pending_selector if self._pending is not None else None

    def want(self, selector: str | None, group: asyncio.TaskGroup) -> None:
        """Move towards serving `selector` (synchronous; starts at most one informer)."""
        if selector == self.selector:
            self._drop_pending()
            return
        if self._pending is not None and selector == self._pending_selector:
            if self._pending.informer.has_synced():
                self._promote()
            return
        self._drop_pending()
        self._log.info("following selector", resource=self.ref.key, selector=selector or "(none)")
        if selector is None:
            self._retire(self._active)
            self._active, self.selector = None, None
            self._on_change()
            return
        informer = self._make(self.ref, selector, None, self._transform)
        informer.add_event_handler(change_handler(self._on_change), name="dns-watcher")
        run = group.create_task(informer.run(), name=f"dns-informer:{informer.description}")
        synced = group.create_task(self._signal_synced(informer), name=f"dns-sync:{self.ref.key}")
        self._pending, self._pending_selector = _Running(informer, run, synced), selector

    async def _signal_synced(self, informer: SharedInformer) -> None:
        await informer.wait_synced()
        self._on_change()

    def _promote(self) -> None:
        assert self._pending is not None
        self._retire(self._active)
        self._active, self.selector = self._pending, self._pending_selector
        self._pending, self._pending_selector = None, None
        self._on_change()

    def _drop_pending(self) -> None:
        self._retire(self._pending)
        self._pending, self._pending_selector = None, None

    def _retire(self, running: _Running | None) -> None:
        if running is None:
            return
        for task in running.tasks:
            task.cancel()

    def stop(self) -> None:
        self._drop_pending()
        self._retire(self._active)
        self._active, self.selector = None, None
