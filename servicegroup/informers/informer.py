"""SharedInformer: one cache of one collection, shared by every handler that needs it.

Owns: the informer's `Indexer`, its `Reflector`, handler registrations, `has_synced`, and
the `servicegroup_informer_cached_objects{resource}` gauge.

Invariants:
- **Store, then notify.** For every change the store is updated first, then each handler is
  called synchronously, in registration order, in event order; a handler therefore always
  finds the object it is told about (or its absence, for a delete) in `store`. A relist
  replaces the store atomically, then notifies: `on_add` for new keys, `on_update` for keys
  whose resourceVersion changed, `on_delete` with a `DeletedFinalStateUnknown` tombstone for
  keys that vanished while we were not watching.
- The transform (if any) is applied to every object before it is cached or handed out.
- A handler that raises is logged and skipped; the informer and other handlers go on.
- A handler added after the informer started first receives `on_add(obj,
  is_initial_list=True)` for every cached object, synchronously, before
  `add_event_handler` returns.
- `has_synced()` becomes True once the first list has been stored and delivered to every
  handler, and stays True.
- Objects handed to handlers and read from `store` are the cached ones: read-only (see
  `store.py`); deepcopy before changing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import structlog

from servicegroup.clock import Clock
from servicegroup.informers.reflector import ListWatchClient, Reflector
from servicegroup.informers.store import (
    DeletedFinalStateUnknown,
    Indexer,
    IndexFunc,
    ReadOnlyStore,
    object_key,
)
from servicegroup.informers.transforms import Transform
from servicegroup.kube.resources import ResourceRef
from servicegroup.metrics import Metrics


@runtime_checkable
class EventHandler(Protocol):
    """What an informer calls on changes. Handlers must be quick and must not block."""

    def on_add(self, obj: dict[str, Any], *, is_initial_list: bool) -> None: ...

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None: ...

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None: ...


@dataclass(frozen=True)
class HandlerFuncs:
    """An `EventHandler` made of optional plain callables (missing ones ignore the event)."""

    on_add: Callable[[dict[str, Any], bool], None] | None = None
    on_update: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
    on_delete: Callable[[dict[str, Any] | DeletedFinalStateUnknown], None] | None = None


class _FuncsAdapter:
    def __init__(self, funcs: HandlerFuncs) -> None:
        self._funcs = funcs

    def on_add(self, obj: dict[str, Any], *, is_initial_list: bool) -> None:
        if self._funcs.on_add is not None:
            self._funcs.on_add(obj, is_initial_list)

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if self._funcs.on_update is not None:
            self._funcs.on_update(old, new)

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        if self._funcs.on_delete is not None:
            self._funcs.on_delete(obj)


class HandlerRegistration:
    """The handle `add_event_handler` returns; pass it to `remove_event_handler`."""

    def __init__(self, informer: SharedInformer, handler: EventHandler, name: str) -> None:
        self._informer = informer
        self.handler = handler
        self.name = name
        self.active = True

    def has_synced(self) -> bool:
        """True once this handler has received the initial content."""
        return self.active and self._informer.has_synced()


def _resource_version(obj: Mapping[str, Any]) -> Any:
    return (obj.get("metadata") or {}).get("resourceVersion")


class _Sink:
    """The reflector's view of the informer, kept off the informer's public surface."""

    def __init__(self, informer: SharedInformer) -> None:
        self._informer = informer

    def replace(self, objects: list[dict[str, Any]], resource_version: str) -> None:
        self._informer._on_replace(objects, resource_version)

    def added(self, obj: dict[str, Any]) -> None:
        self._informer._on_upsert(obj)

    def modified(self, obj: dict[str, Any]) -> None:
        self._informer._on_upsert(obj)

    def deleted(self, obj: dict[str, Any]) -> None:
        self._informer._on_delete(obj)


class SharedInformer:
    """A cache of one (resource, namespace, selectors) collection plus its handlers."""

    def __init__(
        self,
        *,
        client: ListWatchClient,
        ref: ResourceRef,
        clock: Clock,
        metrics: Metrics,
        logger: structlog.typing.FilteringBoundLogger,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        transform: Transform | None = None,
        indexers: Mapping[str, IndexFunc] | None = None,
        page_size: int = 500,
        min_watch_timeout: int = 300,
        max_watch_timeout: int = 600,
        inactivity_timeout: float = 180.0,
        rng: random.Random | None = None,
    ) -> None:
        self.ref = ref
        self.namespace = namespace if ref.namespaced else None
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.transform = transform
        self._indexer = Indexer(indexers=indexers)
        self._store = ReadOnlyStore(self._indexer)
        self._handlers: list[HandlerRegistration] = []
        self._synced = False
        self._synced_event = asyncio.Event()
        self._running = False
        self._counted = 0
        self._gauge = metrics.informer_cached_objects.labels(resource=ref.key)
        self._log = logger.bind(resource=ref.key, namespace=self.namespace or "")
        self._reflector = Reflector(
            client=client,
            ref=ref,
            sink=_Sink(self),
            clock=clock,
            metrics=metrics,
            logger=logger,
            namespace=self.namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            page_size=page_size,
            min_watch_timeout=min_watch_timeout,
            max_watch_timeout=max_watch_timeout,
            inactivity_timeout=inactivity_timeout,
            rng=rng,
            # Listed objects are transformed page by page by the reflector (memory).
            transform=transform,
        )

    def __repr__(self) -> str:
        return f"SharedInformer({self.description})"

    @property
    def description(self) -> str:
        """`resource[ns=..,labels=..,fields=..]` for logs and task names."""
        parts = [
            f"{label}={value}"
            for label, value in (
                ("ns", self.namespace),
                ("labels", self.label_selector),
                ("fields", self.field_selector),
            )
            if value
        ]
        return f"{self.ref.key}[{','.join(parts)}]" if parts else self.ref.key

    # --- consumers' API

    @property
    def store(self) -> ReadOnlyStore:
        """The cache, read-only; objects in it must not be mutated."""
        return self._store

    @property
    def last_sync_resource_version(self) -> str:
        return self._reflector.last_sync_resource_version

    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        """Add indices (allowed at any time; existing objects are indexed at once)."""
        self._indexer.add_indexers(indexers)

    def add_event_handler(
        self, handler: EventHandler | HandlerFuncs, *, name: str | None = None
    ) -> HandlerRegistration:
        """Register `handler`; it first gets the current content as initial-list adds."""
        target: EventHandler = (
            _FuncsAdapter(handler) if isinstance(handler, HandlerFuncs) else handler
        )
        registration = HandlerRegistration(self, target, name or type(handler).__name__)
        self._handlers.append(registration)
        for obj in self._indexer.list():
            self._call(registration, "on_add", obj, is_initial_list=True)
        return registration

    def remove_event_handler(self, registration: HandlerRegistration) -> None:
        """Stop calling that handler (idempotent)."""
        registration.active = False
        if registration in self._handlers:
            self._handlers.remove(registration)

    def has_synced(self) -> bool:
        """The initial list has been stored and delivered to every handler."""
        return self._synced

    async def wait_synced(self) -> None:
        """Return once `has_synced()` is True."""
        await self._synced_event.wait()

    async def run(self) -> None:
        """List and watch until cancelled (one run at a time)."""
        if self._running:
            raise RuntimeError(f"informer {self.description} is already running")
        self._running = True
        try:
            await self._reflector.run()
        finally:
            self._running = False
            # A stopped informer no longer keeps its objects current: stop counting them.
            self._gauge.dec(self._counted)
            self._counted = 0

    # --- delivery (called synchronously by the reflector, in stream order)

    def _call(self, registration: HandlerRegistration, method: str, *args: Any, **kw: Any) -> None:
        if not registration.active:
            return
        try:
            getattr(registration.handler, method)(*args, **kw)
        except Exception:
            self._log.exception(
                "event handler failed", handler=registration.name, kind=method.removeprefix("on_")
            )

    def _notify(self, method: str, *args: Any, **kw: Any) -> None:
        for registration in tuple(self._handlers):
            self._call(registration, method, *args, **kw)

    def _update_gauge(self) -> None:
        size = len(self._indexer)
        if size != self._counted:
            self._gauge.inc(size - self._counted)
            self._counted = size

    def _on_replace(self, objects: list[dict[str, Any]], resource_version: str) -> None:
        # `objects` went through the transform in the reflector, page by page.
        initial = not self._synced
        olds = [self._indexer.get(object_key(obj)) for obj in objects]
        tombstones = self._indexer.replace(objects, resource_version)
        self._update_gauge()
        for obj, old in zip(objects, olds, strict=True):
            if old is None:
                self._notify("on_add", obj, is_initial_list=initial)
            elif _resource_version(old) != _resource_version(obj):
                self._notify("on_update", old, obj)
        for tombstone in tombstones:
            self._notify("on_delete", tombstone)
        if not self._synced:
            self._synced = True
            self._synced_event.set()
            self._log.info("cache synced", count=len(objects))

    def _on_upsert(self, obj: dict[str, Any]) -> None:
        if self.transform is not None:
            obj = self.transform(obj)
        old = self._indexer.get(object_key(obj))
        self._indexer.add(obj)
        self._update_gauge()
        if old is None:
            self._notify("on_add", obj, is_initial_list=False)
        else:
            self._notify("on_update", old, obj)

    def _on_delete(self, obj: dict[str, Any]) -> None:
        if self.transform is not None:
            obj = self.transform(obj)
        self._indexer.delete(obj)
        self._update_gauge()
        self._notify("on_delete", obj)
