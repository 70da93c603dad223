"""One informer per (resource, namespace, label selector, field selector), shared by all.

Owns: the informer registry and the task group the informers run in.

Invariants:
- `informer()` returns the same `SharedInformer` for the same key; indexers requested by
  later callers are merged into it (a name reused with another function is a ValueError),
  and a transform different from the one it was created with is a ValueError (one cache
  cannot hold two shapes of object). Transforms built by `transforms.compose` compare by
  value; other callables by identity, so share the transform object.
- `run()` runs every informer, including those requested after it started, each in its own
  named task of one TaskGroup, until cancelled; an informer crashing (a bug) fails `run()`.
- `synced()` is True when every informer requested so far has synced.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import NamedTuple

import structlog

from servicegroup.clock import Clock
from servicegroup.informers.informer import SharedInformer
from servicegroup.informers.reflector import ListWatchClient
from servicegroup.informers.store import IndexFunc
from servicegroup.informers.transforms import Transform
from servicegroup.kube.resources import ResourceRef
from servicegroup.metrics import Metrics


class InformerKey(NamedTuple):
    ref: ResourceRef
    namespace: str | None
    label_selector: str | None
    field_selector: str | None


class InformerFactory:
    """Creates, shares and runs informers."""

    def __init__(
        self,
        *,
        client: ListWatchClient,
        metrics: Metrics,
        clock: Clock,
        logger: structlog.typing.FilteringBoundLogger,
        page_size: int = 500,
        min_watch_timeout: int = 300,
        max_watch_timeout: int = 600,
        inactivity_timeout: float = 180.0,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._clock = clock
        self._log = logger
        self._options = {
            "page_size": page_size,
            "min_watch_timeout": min_watch_timeout,
            "max_watch_timeout": max_watch_timeout,
        }
        self._inactivity_timeout = inactivity_timeout
        self._rng = rng
        self._informers: dict[InformerKey, SharedInformer] = {}
        self._started: set[InformerKey] = set()
        self._added = asyncio.Event()
        self._running = False

    def informer(
        self,
        ref: ResourceRef,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        transform: Transform | None = None,
        indexers: Mapping[str, IndexFunc] | None = None,
    ) -> SharedInformer:
        """The shared informer for this collection, created on first request."""
        key = InformerKey(
            ref,
            namespace if ref.namespaced and namespace else None,
            label_selector or None,
            field_selector or None,
        )
        existing = self._informers.get(key)
        if existing is not None:
            if existing.transform != transform:
                raise ValueError(
                    f"informer {existing.description} already exists with a different transform"
                )
            if indexers:
                existing.add_indexers(indexers)
            return existing
        informer = SharedInformer(
            client=self._client,
            ref=ref,
            clock=self._clock,
            metrics=self._metrics,
            logger=self._log,
            namespace=key.namespace,
            label_selector=key.label_selector,
            field_selector=key.field_selector,
            transform=transform,
            indexers=indexers,
            page_size=self._options["page_size"],
            min_watch_timeout=self._options["min_watch_timeout"],
            max_watch_timeout=self._options["max_watch_timeout"],
            inactivity_timeout=self._inactivity_timeout,
            rng=random.Random(self._rng.random()) if self._rng is not None else None,
        )
        self._informers[key] = informer
        self._added.set()
        return informer

    @property
    def informers(self) -> list[SharedInformer]:
        return list(self._informers.values())

    async def run(self) -> None:
        """Run every informer (and any requested later) until cancelled."""
        if self._running:
            raise RuntimeError("InformerFactory.run() is already running")
        self._running = True
        try:
            async with asyncio.TaskGroup() as group:
                while True:
                    self._added.clear()
                    for key, informer in list(self._informers.items()):
                        if key not in self._started:
                            self._started.add(key)
                            group.create_task(
                                informer.run(), name=f"informer:{informer.description}"
                            )
                    await self._added.wait()
        finally:
            self._running = False
            self._started.clear()

    def synced(self) -> bool:
        """Every informer requested so far has synced (a readiness check)."""
        return all(informer.has_synced() for informer in self._informers.values())

    async def _all_synced(self) -> None:
        while True:
            pending = [i for i in self._informers.values() if not i.has_synced()]
            if not pending:
                return
            await pending[0].wait_synced()

    async def wait_for_cache_sync(self, *, timeout: float | None = None) -> bool:
        """Wait until `synced()`; False if `timeout` seconds (of the clock) pass first."""
        if timeout is None:
            await self._all_synced()
            return True
        waiter = asyncio.create_task(self._all_synced(), name="informer-factory:wait-sync")
        timer = asyncio.create_task(self._clock.sleep(timeout), name="informer-factory:timeout")
        try:
            await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            timer.cancel()
            await asyncio.wait({waiter, timer})
        return not waiter.cancelled() and waiter.exception() is None and self.synced()
