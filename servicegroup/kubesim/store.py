"""Versioned object storage and watch fan-out (the etcd + watch cache of kubesim).

Owns: `ObjectStore` - one global resourceVersion counter, the objects of every resource
storage (per `StorageKey`, keyed by namespace then name), a bounded per-storage event history
(for watch resume, `resourceVersionMatch=Exact` and `continue` pages), HTTP watchers
(`Watcher`, a bounded queue each) and in-process subscribers (`Subscription`,
`add_listener`).

Invariants:
- Every committed change takes the next resourceVersion from the one global counter; the
  stored object's `metadata.resourceVersion` is that number as a string (a DELETED event
  carries the object's last state with the deletion's resourceVersion, as etcd does).
- Stored objects are immutable by contract: `put` takes ownership of the dict it is given and
  nobody mutates a stored dict afterwards. Readers that hand objects out of process
  serialize them; in-process readers that want to mutate copy first (`clone`).
- Fan-out is synchronous inside `put`/`remove`: each event is offered to every matching
  watcher's queue (no task per object or per event) and serialized to JSON at most once per
  apiVersion, shared by all watchers.
- A watcher whose queue is full is closed (the apiserver closes a watch that cannot keep
  up); its client re-watches from the last resourceVersion it saw.
- History is bounded per storage (`history_size` events); a watch or an exact read from a
  resourceVersion older than the history window fails with 410 Expired.
"""

from __future__ import annotations

import asyncio
import base64
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import orjson

from servicegroup.kubesim import errors
from servicegroup.kubesim.registry import StorageKey
from servicegroup.kubesim.selectors import EVERYTHING, LabelSelector

Obj = dict[str, Any]
ObjectMatcher = Callable[[Mapping[str, Any]], bool]

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
BOOKMARK = "BOOKMARK"
ERROR = "ERROR"


def clone(obj: Any) -> Any:
    """A deep copy of a JSON-shaped value (orjson round trip: faster than copy.deepcopy)."""
    return orjson.loads(orjson.dumps(obj))


def meta_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def rv_of(obj: Mapping[str, Any]) -> int:
    try:
        return int(meta_of(obj).get("resourceVersion") or 0)
    except ValueError:
        return 0


class StoreEvent:
    """One committed change: the new object (or the deleted one) and its previous state."""

    __slots__ = ("_encoded", "key", "obj", "old", "rv", "type")

    def __init__(self, type: str, key: StorageKey, obj: Obj, old: Obj | None, rv: int) -> None:
        self.type = type
        self.key = key
        self.obj = obj
        self.old = old
        self.rv = rv
        self._encoded: dict[str, bytes] = {}

    def encoded(
        self, api_version: str | None = None, transform: Callable[[Obj], Obj] | None = None
    ) -> bytes:
        """`{"type":..,"object":..}\\n` as JSON; cached per apiVersion when no transform."""
        if transform is not None:
            obj = transform(self.obj)
            return orjson.dumps({"type": self.type, "object": obj}) + b"\n"
        cache_key = api_version or ""
        data = self._encoded.get(cache_key)
        if data is None:
            obj = self.obj
            if api_version and obj.get("apiVersion") != api_version:
                obj = {**obj, "apiVersion": api_version}
            data = orjson.dumps({"type": self.type, "object": obj}) + b"\n"
            self._encoded[cache_key] = data
        return data

    def __repr__(self) -> str:
        meta = meta_of(self.obj)
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        return f"StoreEvent({self.type} {self.key.plural} {where} rv={self.rv})"


class WatchFilter:
    """Which objects a watcher or subscriber sees."""

    __slots__ = ("fields", "labels", "name", "namespace")

    def __init__(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        labels: LabelSelector = EVERYTHING,
        fields: ObjectMatcher | None = None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.labels = labels
        self.fields = fields

    def matches(self, obj: Mapping[str, Any]) -> bool:
        meta = meta_of(obj)
        if self.namespace is not None and meta.get("namespace", "") != self.namespace:
            return False
        if self.name is not None and meta.get("name") != self.name:
            return False
        if not self.labels.empty and not self.labels.matches(meta.get("labels")):
            return False
        return self.fields is None or self.fields(obj)

    def translate(self, event: StoreEvent) -> str | None:
        """The event type this filter sees for a change (apiserver cacheWatcher semantics)."""
        now = self.matches(event.obj)
        if event.type == DELETED:
            return DELETED if now else None
        before = event.old is not None and self.matches(event.old)
        if now and before:
            return MODIFIED
        if now:
            return ADDED
        if before:
            return DELETED
        return None


class Watcher:
    """One open watch: synthetic/replayed events first, then live events from a bounded queue."""

    __slots__ = ("_waiter", "capacity", "closed", "filter", "initial", "key", "queue")

    def __init__(
        self, key: StorageKey, filter: WatchFilter, *, capacity: int, initial: list[StoreEvent]
    ) -> None:
        self.key = key
        self.filter = filter
        self.capacity = capacity
        self.initial: deque[StoreEvent] = deque(initial)
        self.queue: deque[StoreEvent] = deque()
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, event: StoreEvent) -> None:
        if self.closed:
            return
        seen = self.filter.translate(event)
        if seen is None:
            return
        if len(self.queue) >= self.capacity:
            # Too slow: the apiserver terminates such a watch rather than buffer forever.
            self.close()
            return
        if seen != event.type:
            event = StoreEvent(seen, event.key, event.obj, event.old, event.rv)
        self.queue.append(event)
        self._wake()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.clear()
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pop_ready(self) -> StoreEvent | None:
        """The next event without waiting, or None."""
        if self.initial:
            return self.initial.popleft()
        if self.queue:
            return self.queue.popleft()
        return None

    async def wait(self, timeout: float | None) -> bool:
        """Wait until an event is ready or the watcher closes; False on timeout."""
        if self.initial or self.queue or self.closed:
            return True
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        try:
            if timeout is None:
                await self._waiter
                return True
            handle = loop.call_later(timeout, self._timeout_waiter, self._waiter)
            try:
                await self._waiter
            finally:
                handle.cancel()
            return bool(self.initial or self.queue or self.closed)
        finally:
            self._waiter = None

    @staticmethod
    def _timeout_waiter(waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_result(None)


class Subscription:
    """An in-process, unbounded event stream (for the workload simulation).

    `async for event in subscription` yields `StoreEvent`s in commit order; the objects are
    the stored (shared, read-only) dicts. `close()` ends the iteration.
    """

    def __init__(self, store: ObjectStore, keys: frozenset[StorageKey] | None) -> None:
        self._store = store
        self.keys = keys
        self._queue: deque[StoreEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def _offer(self, event: StoreEvent) -> None:
        if self.closed or (self.keys is not None and event.key not in self.keys):
            return
        self._queue.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._store._subscriptions.discard(self)
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def pending(self) -> int:
        return len(self._queue)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> StoreEvent:
        while not self._queue:
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Storage:
    """The objects and history of one resource storage."""

    __slots__ = ("base_rv", "evicted_rv", "history", "objects", "watchers")

    def __init__(self, history_size: int, base_rv: int) -> None:
        self.objects: dict[str, dict[str, Obj]] = {}
        self.history: deque[StoreEvent] = deque(maxlen=max(1, history_size))
        self.watchers: set[Watcher] = set()
        # Events at or before max(base_rv, evicted_rv) can no longer be replayed.
        self.base_rv = base_rv
        self.evicted_rv = 0

    @property
    def oldest_servable(self) -> int:
        return max(self.base_rv, self.evicted_rv)

    def count(self) -> int:
        return sum(len(names) for names in self.objects.values())


class ObjectStore:
    """All stored objects, the resourceVersion counter, history and watchers."""

    def __init__(self, *, history_size: int = 10_000, watch_queue_size: int = 1_000) -> None:
        self.history_size = history_size
        self.watch_queue_size = watch_queue_size
        self._rv = 1
        self._storages: dict[StorageKey, _Storage] = {}
        self._listeners: list[Callable[[StoreEvent], None]] = []
        self._subscriptions: set[Subscription] = set()

    # ---- reads -------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The resourceVersion of the latest committed change."""
        return self._rv

    def _storage(self, key: StorageKey) -> _Storage:
        storage = self._storages.get(key)
        if storage is None:
            storage = _Storage(self.history_size, self._rv if self._storages else 0)
            self._storages[key] = storage
        return storage

    def ensure(self, key: StorageKey) -> None:
        """Create the (empty) storage for a resource; its history starts now."""
        self._storage(key)

    def get(self, key: StorageKey, namespace: str, name: str) -> Obj | None:
        storage = self._storages.get(key)
        if storage is None:
            return None
        names = storage.objects.get(namespace)
        return names.get(name) if names else None

    def items(self, key: StorageKey, namespace: str | None = None) -> Iterator[Obj]:
        """Current objects, across namespaces when `namespace` is None (unordered)."""
        storage = self._storages.get(key)
        if storage is None:
            return iter(())
        if namespace is not None:
            return iter(list(storage.objects.get(namespace, {}).values()))
        return iter([obj for names in storage.objects.values() for obj in names.values()])

    def count(self, key: StorageKey, namespace: str | None = None) -> int:
        storage = self._storages.get(key)
        if storage is None:
            return 0
        if namespace is not None:
            return len(storage.objects.get(namespace, {}))
        return storage.count()

    def namespaces_in_use(self, key: StorageKey) -> list[str]:
        storage = self._storages.get(key)
        return [ns for ns, names in storage.objects.items() if names] if storage else []

    def keys(self) -> list[StorageKey]:
        return list(self._storages)

    def oldest_servable(self, key: StorageKey) -> int:
        return self._storage(key).oldest_servable

    def check_servable(self, key: StorageKey, rv: int) -> None:
        """Raise 410 Expired when events after `rv` are no longer all in history."""
        oldest = self._storage(key).oldest_servable
        if rv < oldest:
            raise errors.too_old_resource_version(rv, oldest)

    def snapshot(self, key: StorageKey, rv: int, namespace: str | None = None) -> list[Obj]:
        """The objects as they were at resourceVersion `rv` (undoing later history)."""
        storage = self._storage(key)
        if rv > self._rv:
            raise errors.too_large_resource_version(rv, self._rv)
        self.check_servable(key, rv)
        later = [event for event in storage.history if event.rv > rv]
        current = list(self.items(key, namespace))
        if not later:
            return current
        state: dict[tuple[str, str], Obj] = {
            (meta_of(obj).get("namespace", ""), meta_of(obj)["name"]): obj for obj in current
        }
        for event in reversed(later):
            meta = meta_of(event.obj)
            ident = (meta.get("namespace", ""), meta["name"])
            if namespace is not None and ident[0] != namespace:
                continue
            if event.type == ADDED:
                state.pop(ident, None)
            elif event.old is not None:
                state[ident] = event.old
        return list(state.values())

    # ---- writes ------------------------------------------------------------------------

    def next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def put(self, key: StorageKey, obj: Obj, *, old: Obj | None) -> StoreEvent:
        """Store `obj` (ADDED when `old` is None, else MODIFIED) under a new resourceVersion."""
        rv = self.next_rv()
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(rv)
        namespace = meta.get("namespace", "")
        storage = self._storage(key)
        storage.objects.setdefault(namespace, {})[meta["name"]] = obj
        event = StoreEvent(ADDED if old is None else MODIFIED, key, obj, old, rv)
        self._dispatch(storage, event)
        return event

    def remove(self, key: StorageKey, obj: Obj) -> StoreEvent:
        """Delete the stored object; the DELETED event carries it at a new resourceVersion."""
        meta = meta_of(obj)
        namespace = meta.get("namespace", "")
        storage = self._storage(key)
        names = storage.objects.get(namespace, {})
        old = names.pop(meta["name"])
        if not names:
            storage.objects.pop(namespace, None)
        rv = self.next_rv()
        final = {**old, "metadata": {**meta_of(old), "resourceVersion": str(rv)}}
        event = StoreEvent(DELETED, key, final, old, rv)
        self._dispatch(storage, event)
        return event

    def _dispatch(self, storage: _Storage, event: StoreEvent) -> None:
        history = storage.history
        if history.maxlen is not None and len(history) == history.maxlen:
            storage.evicted_rv = history[0].rv
        history.append(event)
        for watcher in list(storage.watchers):
            watcher.offer(event)
            if watcher.closed:
                storage.watchers.discard(watcher)
        for listener in list(self._listeners):
            listener(event)
        for subscription in list(self._subscriptions):
            subscription._offer(event)

    # ---- watch -------------------------------------------------------------------------

    def watch(
        self,
        key: StorageKey,
        filter: WatchFilter,
        *,
        since: int | None,
        capacity: int | None = None,
    ) -> Watcher:
        """Open a watch.

        `since=None`: synthetic ADDED events for every current matching object first.
        `since=N`: every change after N (410 Expired when N is older than the history).
        """
        storage = self._storage(key)
        initial: list[StoreEvent] = []
        if since is None:
            objects = sorted(
                (obj for obj in self.items(key, filter.namespace) if filter.matches(obj)),
                key=lambda o: (meta_of(o).get("namespace", ""), meta_of(o).get("name", "")),
            )
            initial = [StoreEvent(ADDED, key, obj, None, rv_of(obj)) for obj in objects]
        else:
            if since > self._rv:
                raise errors.too_large_resource_version(since, self._rv)
            self.check_servable(key, since)
            for event in storage.history:
                if event.rv <= since:
                    continue
                seen = filter.translate(event)
                if seen is None:
                    continue
                if seen != event.type:
                    initial.append(StoreEvent(seen, event.key, event.obj, event.old, event.rv))
                else:
                    initial.append(event)
        watcher = Watcher(key, filter, capacity=capacity or self.watch_queue_size, initial=initial)
        storage.watchers.add(watcher)
        return watcher

    def stop_watch(self, watcher: Watcher) -> None:
        watcher.close()
        storage = self._storages.get(watcher.key)
        if storage is not None:
            storage.watchers.discard(watcher)

    def close_all_watches(self) -> int:
        """Close every open watch now (fault injection); returns how many were closed."""
        closed = 0
        for storage in self._storages.values():
            for watcher in list(storage.watchers):
                watcher.close()
                closed += 1
            storage.watchers.clear()
        return closed

    def watcher_count(self, key: StorageKey | None = None) -> int:
        if key is not None:
            storage = self._storages.get(key)
            return len(storage.watchers) if storage else 0
        return sum(len(storage.watchers) for storage in self._storages.values())

    def expire_history(self) -> None:
        """Forget all history: every resourceVersion before now becomes too old to resume."""
        for storage in self._storages.values():
            storage.history.clear()
            storage.evicted_rv = self._rv

    def drop_storage(self, key: StorageKey) -> None:
        """Forget a storage entirely (its CRD is gone); open watches end."""
        storage = self._storages.pop(key, None)
        if storage is not None:
            for watcher in storage.watchers:
                watcher.close()

    # ---- in-process consumers ----------------------------------------------------------

    def add_listener(self, listener: Callable[[StoreEvent], None]) -> None:
        """Call `listener` synchronously for every committed event (internal controllers).

        A listener must not write to the store: it records work for its own task.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[StoreEvent], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def subscribe(self, keys: Iterable[StorageKey] | None = None) -> Subscription:
        """An async iterator of every future event (of `keys`, or all storages)."""
        subscription = Subscription(self, frozenset(keys) if keys is not None else None)
        self._subscriptions.add(subscription)
        return subscription


def encode_continue(rv: int, start: str) -> str:
    """An opaque continue token: the list's resourceVersion and the last key returned."""
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start + "\x00"})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    """Inverse of `encode_continue`; raises ValueError on a malformed token."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        rv = int(data["rv"])
        start = str(data["start"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as err:
        raise ValueError(f"continue key is not valid: {err}") from None
    if data.get("v") != "meta.k8s.io/v1":
        raise ValueError("continue key is not valid: incorrect encoded start resourceVersion")
    if rv <= 0:
        raise ValueError("continue key is not valid: incorrect encoded start resourceVersion")
    return rv, start.removesuffix("\x00")
