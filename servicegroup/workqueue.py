"""Work queues with client-go `util/workqueue` semantics, for asyncio.

Three layers, each adding one thing:

- `WorkQueue`: a FIFO of distinct items with a dirty set and a processing set
  (client-go `queue.go`). Duplicates collapse; an item is never handed to two getters at once;
  an item added while it is being processed is processed again after `done()`.
- `DelayingQueue`: `add_after(item, delay)` (client-go `delaying_queue.go`). A heap keeps only the
  earliest deadline per item. The heap is drained by `run()`, a loop the owner runs in its
  TaskGroup; it sleeps on the injected Clock until the earliest deadline, and is woken early when
  an item with an earlier deadline arrives or the queue shuts down. With a `FakeClock` the loop
  is driven by `advance()`/`set()`: an item is released exactly when the clock reaches its
  deadline, never before.
- `RateLimitingQueue`: `add_rate_limited(item)` = `add_after(item, limiter.when(item))`,
  `forget`, `num_requeues` (client-go `rate_limiting_queue.go`).

Everything that mutates a queue is synchronous (no `await` between reading and writing state);
only `get()`, `shut_down_with_drain()` and `run()` suspend. Metrics follow client-go's points
(see `WorkQueue`); unfinished work and the longest running processor are computed from the
Clock each time Prometheus collects them, instead of client-go's 500 ms refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from servicegroup.clock import Clock
from servicegroup.metrics import Metrics
from servicegroup.ratelimiters import RateLimiter

T = TypeVar("T", bound=Hashable)


class ShutDown(Exception):
    """`get()` on a queue that is shut down and has nothing left to hand out."""


class WorkQueue(Generic[T]):
    """A FIFO work queue with client-go's dirty/processing guarantees.

    Invariants (after every synchronous step):
    - `dirty` holds the items that need processing; `queue` holds each item of
      `dirty - processing` exactly once, in the order they became dirty; so
      `set(queue) == dirty - processing` and `len(queue) == len(set(queue))`.
    - `processing` holds the items handed out by `get()` and not yet `done()`. An item in
      `processing` is never in `queue`, so no two getters ever hold the same item.
    - `add(x)` of a dirty item is a no-op (duplicates collapse). `add(x)` while `x` is
      processing only marks it dirty; `done(x)` then puts it back in `queue`.
    - After `shut_down()`, `add` is ignored; `get()` still hands out what is left in `queue`
      and raises `ShutDown` once it is empty.

    Metrics (labels name=controller=`name`), at client-go's points: `add` of a new dirty item
    counts `workqueue_adds_total`, sets `workqueue_depth` (= number of dirty items) and starts
    the queue-duration timer; `get` observes `workqueue_queue_duration_seconds` and starts the
    work timer; `done` observes `workqueue_work_duration_seconds`.
    """

    def __init__(self, *, name: str, clock: Clock, metrics: Metrics | None = None) -> None:
        self.name = name
        self._clock = clock
        self._metrics = metrics
        self._queue: deque[T] = deque()
        self._dirty: set[T] = set()
        self._processing: set[T] = set()
        self._added_at: dict[T, float] = {}
        self._started_at: dict[T, float] = {}
        self._getters: deque[asyncio.Future[None]] = deque()
        self._drainers: list[asyncio.Future[None]] = []
        self._shutting_down = False
        self._drain = False
        if metrics is not None:
            labels = (name, name)
            metrics.workqueue_depth.labels(*labels).set(0)
            metrics.workqueue_adds.labels(*labels)
            metrics.workqueue_retries.labels(*labels)
            metrics.workqueue_unfinished_work.labels(*labels).set_function(self.unfinished_work)
            metrics.workqueue_longest_running_processor.labels(*labels).set_function(
                self.longest_running_processor
            )

    # --- the client-go interface

    def add(self, item: T) -> None:
        """Mark `item` as needing processing (ignored once shutting down)."""
        if self._shutting_down or item in self._dirty:
            return
        self._dirty.add(item)
        self._added_at.setdefault(item, self._clock.monotonic())
        if self._metrics is not None:
            self._metrics.workqueue_adds.labels(self.name, self.name).inc()
            self._set_depth()
        if item in self._processing:
            return
        self._queue.append(item)
        self._wake_getter()

    async def get(self) -> T:
        """The next item, now marked as processing; raises `ShutDown` once shut down and empty.

        The caller must call `done(item)` when it has finished with the item.
        """
        loop = asyncio.get_running_loop()
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            waiter: asyncio.Future[None] = loop.create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    # We were woken for an item we will never take: hand the wake-up on,
                    # or that item would sit in the queue while another getter waits.
                    self._wake_getter()
                else:
                    with contextlib.suppress(ValueError):
                        self._getters.remove(waiter)
                raise
        item = self._queue.popleft()
        now = self._clock.monotonic()
        self._processing.add(item)
        self._dirty.discard(item)
        added_at = self._added_at.pop(item, now)
        self._started_at[item] = now
        if self._metrics is not None:
            self._set_depth()
            self._metrics.workqueue_queue_duration.labels(self.name, self.name).observe(
                now - added_at
            )
        return item

    def done(self, item: T) -> None:
        """`item` is processed; if it was re-added meanwhile, it goes back in the queue.

        Calling it for an item that is not being processed does nothing (client-go would
        queue a duplicate).
        """
        if item not in self._processing:
            return
        self._processing.discard(item)
        started_at = self._started_at.pop(item, None)
        if self._metrics is not None and started_at is not None:
            self._metrics.workqueue_work_duration.labels(self.name, self.name).observe(
                self._clock.monotonic() - started_at
            )
        if item in self._dirty:
            self._queue.append(item)
            self._wake_getter()
        elif not self._processing:
            self._wake_drainers()

    def __len__(self) -> int:
        """Items waiting to be handed out (not those being processed)."""
        return len(self._queue)

    def shut_down(self) -> None:
        """Stop accepting items and wake every getter; does not wait for processing items."""
        self._drain = False
        self._begin_shut_down()
        self._wake_drainers()

    async def shut_down_with_drain(self) -> None:
        """Shut down, then wait until every item being processed is `done()`.

        A concurrent `shut_down()` ends the wait early, as in client-go.
        """
        self._drain = True
        self._begin_shut_down()
        loop = asyncio.get_running_loop()
        while self._processing and self._drain:
            waiter: asyncio.Future[None] = loop.create_future()
            self._drainers.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._drainers.remove(waiter)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    # --- observability

    @property
    def processing(self) -> int:
        """How many items are handed out and not yet done."""
        return len(self._processing)

    def unfinished_work(self) -> float:
        """Seconds of work in progress: the sum of every processing item's running time."""
        now = self._clock.monotonic()
        return sum(now - started for started in list(self._started_at.values()))

    def longest_running_processor(self) -> float:
        """Seconds the oldest item still being processed has been running (0 when idle)."""
        now = self._clock.monotonic()
        return max((now - started for started in list(self._started_at.values())), default=0.0)

    # --- internals

    def _begin_shut_down(self) -> None:
        self._shutting_down = True
        getters, self._getters = self._getters, deque()
        for getter in getters:
            if not getter.done():
                getter.set_result(None)
        self._on_shut_down()

    def _on_shut_down(self) -> None:
        """Hook for subclasses that own more waiting state."""

    def _wake_getter(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    def _wake_drainers(self) -> None:
        for drainer in self._drainers:
            if not drainer.done():
                drainer.set_result(None)

    def _set_depth(self) -> None:
        assert self._metrics is not None
        self._metrics.workqueue_depth.labels(self.name, self.name).set(len(self._dirty))


class DelayingQueue(WorkQueue[T]):
    """A `WorkQueue` whose items can be added after a delay measured on the injected Clock.

    The owner must run `run()` (in its TaskGroup) for delayed items to be released; it returns
    once the queue is shut down. Delayed items not yet released when the queue shuts down are
    discarded, as in client-go.
    """

    def __init__(self, *, name: str, clock: Clock, metrics: Metrics | None = None) -> None:
        super().__init__(name=name, clock=clock, metrics=metrics)
        self._seq = itertools.count()
        # Heap of (ready_at, seq, item). Moving an item's deadline earlier pushes a new entry;
        # the entry `_deadlines` does not name is stale and skipped when it reaches the top.
        self._heap: list[tuple[float, int, T]] = []
        self._deadlines: dict[T, tuple[float, int]] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._waiting_until: float | None = None
        self._running = False

    def add_after(self, item: T, delay: float) -> None:
        """Add `item` once `delay` seconds have passed (at once when `delay <= 0`).

        An item already waiting keeps the earlier of its two deadlines.
        """
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(item)
            return
        ready_at = self._clock.monotonic() + delay
        current = self._deadlines.get(item)
        if current is not None and current[0] <= ready_at:
            return
        seq = next(self._seq)
        self._deadlines[item] = (ready_at, seq)
        heapq.heappush(self._heap, (ready_at, seq, item))
        if self._waiting_until is None or ready_at < self._waiting_until:
            self._wake_loop()

    @property
    def delayed(self) -> int:
        """How many items are waiting for their deadline."""
        return len(self._deadlines)

    async def run(self) -> None:
        """Release delayed items at their deadlines until the queue shuts down."""
        if self._running:
            raise RuntimeError(f"workqueue {self.name}: run() is already running")
        self._running = True
        loop = asyncio.get_running_loop()
        try:
            while not self._shutting_down:
                now = self._clock.monotonic()
                next_ready = self._release_ready(now)
                waiter: asyncio.Future[None]
                if next_ready is None:
                    waiter = loop.create_future()
                else:
                    waiter = asyncio.create_task(
                        self._clock.sleep(next_ready - now), name=f"workqueue-{self.name}-delay"
                    )
                self._waiter, self._waiting_until = waiter, next_ready
                try:
                    # asyncio.wait never raises the waiter's own cancellation (our wake-up
                    # signal), only a cancellation of this task.
                    await asyncio.wait((waiter,))
                finally:
                    self._waiter, self._waiting_until = None, None
                    if not waiter.done():
                        waiter.cancel()
        finally:
            self._running = False

    def _release_ready(self, now: float) -> float | None:
        """Add every item whose deadline has come; return the next deadline, if any."""
        while self._heap:
            ready_at, seq, item = self._heap[0]
            if self._deadlines.get(item) != (ready_at, seq):
                heapq.heappop(self._heap)
                continue
            if ready_at > now:
                return ready_at
            heapq.heappop(self._heap)
            del self._deadlines[item]
            self.add(item)
        return None

    def _wake_loop(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()

    def _on_shut_down(self) -> None:
        self._heap.clear()
        self._deadlines.clear()
        self._wake_loop()


class RateLimitingQueue(DelayingQueue[T]):
    """A `DelayingQueue` whose retries are spaced by a `RateLimiter`.

    `add_rate_limited` counts `workqueue_retries_total`.
    """

    def __init__(
        self,
        *,
        name: str,
        clock: Clock,
        rate_limiter: RateLimiter,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock, metrics=metrics)
        self.rate_limiter = rate_limiter

    def add_rate_limited(self, item: T) -> None:
        """Add `item` after the delay the rate limiter chooses for it."""
        if self._shutting_down:
            return
        if self._metrics is not None:
            self._metrics.workqueue_retries.labels(self.name, self.name).inc()
        self.add_after(item, self.rate_limiter.when(item))

    def forget(self, item: T) -> None:
        """Stop tracking `item`'s failures (it succeeded, or will never be retried)."""
        self.rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return self.rate_limiter.num_requeues(item)
