"""The wrapper's watch cache: what it serves, in its own resourceVersion space.

Owns: `Revisions` (the wrapper's monotonic resourceVersion counter, shared by every served
resource), `WatchCache` (the served objects of one resource, its bounded event log and its
open watchers) and `Watcher` (one client watch: its position in the log and its predicate).

Why our own resourceVersions: the served objects are filtered forms of upstream objects, and
re-filtering (a node relabelled, a Service's `topologyKeys` changed) creates changes the API
server never made. Each served change therefore gets the next value of our own counter, and
every served object, list and event carries it. The counter starts at the wall clock in
microseconds when the process starts, so a restarted wrapper never reissues a value an earlier
instance gave out: a client presenting an old instance's (or the real API server's) RV finds it
below our floor and gets 410 Expired, then relists. A value above our current one was never
issued by this process and gets 410 as well.

Invariants:
- Every mutation is synchronous: an object's new form, its RV and its log entry appear
  together, and watchers are woken after the entry is appended.
- A form equal to the served one (`metadata.resourceVersion` aside) records nothing: no RV,
  no event. So clients see exactly the changes of the filtered form.
- RVs in one log strictly increase. A watch from RV r is served when `r >= floor` (every
  event after r is still in the log); below the floor it is 410 Expired. The log keeps at
  least `capacity` events; older ones are compacted in amortized O(1).
- Watch event types follow kube-apiserver's cacher for selector transitions: an object that
  starts matching a watcher's predicate is ADDED, one that stops matching is DELETED (its
  previous content at the event's RV), neither is skipped.
- Objects are read-only once stored; each event's JSON is encoded once and shared by every
  watcher.
- A watcher that falls behind the compacted log is closed (the client re-watches from its last
  RV and relists if that has expired), so a slow client cannot make the cache grow.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from servicegroup.kube.resources import ResourceRef
from servicegroup.wrapper.selectors import Predicate

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
BOOKMARK = "BOOKMARK"
ERROR = "ERROR"
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def wall_clock_start() -> int:
    """A starting RV no earlier instance of the wrapper can have reached (unix microseconds)."""
    return time.time_ns() // 1000


class Revisions:
    """The wrapper's resourceVersion counter (one per process, shared by every cache)."""

    def __init__(self, *, start: int) -> None:
        if start < 1:
            raise ValueError("resourceVersions start at 1 or more")
        self._current = start

    @property
    def current(self) -> int:
        return self._current

    def next(self) -> int:
        self._current += 1
        return self._current


class ResourceExpired(Exception):
    """The requested resourceVersion cannot be served any more (HTTP 410 Expired)."""

    def __init__(self, requested: int, floor: int) -> None:
        super().__init__(f"too old resource version: {requested} ({floor})")
        self.requested = requested
        self.floor = floor


def _with_rv(obj: dict[str, Any], rv: int) -> dict[str, Any]:
    return {**obj, "metadata": {**(obj.get("metadata") or {}), "resourceVersion": str(rv)}}


_FRAME = ("kind", "apiVersion", "metadata")


def same_form(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal objects, ignoring `kind`, `apiVersion` and `metadata.resourceVersion`."""
    ma = a.get("metadata") or {}
    mb = b.get("metadata") or {}
    if ma.keys() - {"resourceVersion"} != mb.keys() - {"resourceVersion"}:
        return False
    if any(v != mb[k] for k, v in ma.items() if k != "resourceVersion"):
        return False
    body_a = {k: v for k, v in a.items() if k not in _FRAME}
    body_b = {k: v for k, v in b.items() if k not in _FRAME}
    return body_a == body_b


@dataclass(slots=True, eq=False)
class CacheEvent:
    """One served change. `obj` carries `rv`; for DELETED it is the last state at `rv`."""

    rv: int
    type: str
    obj: dict[str, Any]
    prev: dict[str, Any] | None
    _encoded: bytes | None = None
    _encoded_prev: bytes | None = None

    def encoded(self) -> bytes:
        if self._encoded is None:
            self._encoded = orjson.dumps(self.obj)
        return self._encoded

    def encoded_prev(self) -> bytes:
        """The previous content at this event's RV (for a DELETED caused by a selector)."""
        if self._encoded_prev is None:
            assert self.prev is not None
            self._encoded_prev = orjson.dumps(_with_rv(self.prev, self.rv))
        return self._encoded_prev


def event_line(event_type: str, encoded_obj: bytes) -> bytes:
    """One line of a JSON watch stream."""
    return b'{"type":"' + event_type.encode() + b'","object":' + encoded_obj + b"}\n"


class Watcher:
    """One open watch on a `WatchCache`: a log position plus a predicate."""

    def __init__(
        self,
        cache: WatchCache,
        *,
        next_seq: int,
        predicate: Predicate,
        initial: list[dict[str, Any]],
        initial_rv: int,
    ) -> None:
        self._cache = cache
        self._next_seq = next_seq
        self.predicate = predicate
        self._initial = initial
        self.initial_rv = initial_rv
        self._wake = asyncio.Event()
        self.closed = False
        self.behind = False
        if initial or next_seq < cache.end_seq:
            self._wake.set()

    def take_initial(self) -> list[bytes]:
        """ADDED lines for the state the watch started from (once)."""
        items, self._initial = self._initial, []
        return [event_line(ADDED, orjson.dumps(obj)) for obj in items]

    def take(self) -> list[tuple[str, bytes]]:
        """(type, line) for every pending event this watcher's predicate lets through."""
        self._wake.clear()
        events, self._next_seq, behind = self._cache.events_since(self._next_seq)
        if behind:
            self.behind = True
            self.close()
            return []
        out: list[tuple[str, bytes]] = []
        matches = self.predicate.matches
        everything = self.predicate.everything
        for event in events:
            cur = event.type != DELETED and (everything or matches(event.obj))
            old = event.prev is not None and (everything or matches(event.prev))
            if cur and old:
                out.append((MODIFIED, event_line(MODIFIED, event.encoded())))
            elif cur:
                out.append((ADDED, event_line(ADDED, event.encoded())))
            elif old:
                if event.type == DELETED:
                    out.append((DELETED, event_line(DELETED, event.encoded())))
                else:
                    out.append((DELETED, event_line(DELETED, event.encoded_prev())))
        return out

    @property
    def pending(self) -> bool:
        return self._wake.is_set()

    async def wait(self) -> None:
        """Until there may be something to take, or the watcher is closed."""
        await self._wake.wait()

    def notify(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()
        self._cache.forget(self)


@dataclass
class _Log:
    events: list[CacheEvent] = field(default_factory=list)
    base_seq: int = 0  # the sequence number of events[0]


class WatchCache:
    """The served objects of one resource, in the wrapper's RV space."""

    def __init__(self, *, ref: ResourceRef, revisions: Revisions, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.ref = ref
        self._revisions = revisions
        self._capacity = capacity
        self._objects: dict[str, dict[str, Any]] = {}
        self._log = _Log()
        self._floor = revisions.current
        self._watchers: set[Watcher] = set()
        self._head = {"kind": ref.kind, "apiVersion": ref.api_version}

    # --- reading

    def __len__(self) -> int:
        return len(self._objects)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._objects.get(key)

    def objects(self) -> Iterator[dict[str, Any]]:
        return iter(self._objects.values())

    @property
    def resource_version(self) -> int:
        """The RV a list answers with: every change up to it is reflected."""
        return self._revisions.current

    @property
    def floor(self) -> int:
        """The oldest RV a watch can resume from."""
        return self._floor

    @property
    def end_seq(self) -> int:
        return self._log.base_seq + len(self._log.events)

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    # --- writing

    def upsert(self, key: str, form: dict[str, Any]) -> CacheEvent | None:
        """Serve `form` under `key`; None when it equals what is already served."""
        old = self._objects.get(key)
        if old is not None and same_form(old, form):
            return None
        rv = self._revisions.next()
        # kind and apiVersion first, as the API server writes them; the RV is ours.
        body = {k: v for k, v in form.items() if k not in _FRAME}
        metadata = {**(form.get("metadata") or {}), "resourceVersion": str(rv)}
        served = {**self._head, "metadata": metadata, **body}
        self._objects[key] = served
        event = CacheEvent(rv, ADDED if old is None else MODIFIED, served, old)
        self._append(event)
        return event

    def delete(self, key: str) -> CacheEvent | None:
        """Stop serving `key`; None when it was not served."""
        old = self._objects.pop(key, None)
        if old is None:
            return None
        rv = self._revisions.next()
        event = CacheEvent(rv, DELETED, _with_rv(old, rv), old)
        self._append(event)
        return event

    def _append(self, event: CacheEvent) -> None:
        log = self._log
        log.events.append(event)
        if len(log.events) >= 2 * self._capacity:
            drop = len(log.events) - self._capacity
            self._floor = log.events[drop - 1].rv
            del log.events[:drop]
            log.base_seq += drop
        for watcher in self._watchers:
            watcher.notify()

    # --- watching

    def parse_rv(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"invalid resource version {text!r}") from None
        if value < 0:
            raise ValueError(f"invalid resource version {text!r}")
        return value

    def watch(
        self, *, resource_version: str, predicate: Predicate, send_initial: bool | None
    ) -> Watcher:
        """Open a watch. Raises ResourceExpired (410) or ValueError (400, malformed RV).

        `resource_version` "" or "0" starts from the current state, sent as ADDED events
        unless `send_initial` is False; a number resumes right after it (initial events
        are never sent then, unless `send_initial` asks for them).
        """
        current = self._revisions.current
        if resource_version in ("", "0"):
            initial_wanted = send_initial is not False
            start_seq = self.end_seq
        else:
            rv = self.parse_rv(resource_version)
            if send_initial:
                # "Not older than rv": our current state is, unless rv was never issued.
                if rv > current:
                    raise ResourceExpired(rv, self._floor)
                initial_wanted, start_seq = True, self.end_seq
            else:
                if rv < self._floor or rv > current:
                    raise ResourceExpired(rv, self._floor)
                initial_wanted, start_seq = False, self._seq_after(rv)
        initial = (
            [o for o in self._objects.values() if predicate.matches(o)] if initial_wanted else []
        )
        # Oldest first: the RV of the last ADDED is then a correct point to resume from.
        initial.sort(key=lambda o: int(o["metadata"]["resourceVersion"]))
        watcher = Watcher(
            self, next_seq=start_seq, predicate=predicate, initial=initial, initial_rv=current
        )
        self._watchers.add(watcher)
        return watcher

    def _seq_after(self, rv: int) -> int:
        """The sequence number of the first event with an RV above `rv`."""
        index = bisect.bisect_right(self._log.events, rv, key=lambda e: e.rv)
        return self._log.base_seq + index

    def events_since(self, seq: int) -> tuple[list[CacheEvent], int, bool]:
        """(events from `seq` on, the next position, fell behind the compacted log?)."""
        log = self._log
        if seq < log.base_seq:
            return [], seq, True
        return log.events[seq - log.base_seq :], self.end_seq, False

    def forget(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def close(self) -> None:
        """End every open watch (shutdown)."""
        for watcher in list(self._watchers):
            watcher.close()
