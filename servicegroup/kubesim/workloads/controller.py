"""The loop every workload controller runs, and its way of writing through the Engine.

Owns: `Writer` (create / update / update_status / delete through `Engine` under one field
manager, counting writes) and `LoopController` (a level-triggered loop over one `KeyQueue`:
wait for keys, take the whole batch, `begin_pass`, `process` each key, yield to request
handlers every few milliseconds, retry failed keys with per-key backoff).

Invariants:
- Controllers are level-triggered: `process(key)` reads the current objects from the store
  (through the index) and converges them; it never relies on what the event said.
- Store listeners (`on_event`) only map events to keys; every write happens in `process`,
  in the controller's own task, never inside another writer's commit.
- A failed key is retried with per-key exponential backoff (5 ms doubling up to 30 s) and
  never dropped; a successful pass for the key forgets its failures. `CancelledError` is
  never caught.
- No pass holds the event loop for more than `slice_seconds` without yielding, so request
  handling stays responsive while a large backlog drains.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from servicegroup.kubesim import errors
from servicegroup.kubesim.engine import DeleteOptions, Engine, SimClock, WriteContext
from servicegroup.kubesim.registry import ResourceType, StorageKey
from servicegroup.kubesim.store import StoreEvent
from servicegroup.kubesim.workloads.index import WorkloadIndex
from servicegroup.kubesim.workloads.queue import KeyQueue
from servicegroup.kubesim.workloads.timers import TimerHeap

Obj = dict[str, Any]
K = TypeVar("K", bound=Hashable)

BACKOFF_BASE = 0.005
BACKOFF_MAX = 30.0


class Writer:
    """Writes under one field manager, as the component with that name would send them."""

    def __init__(self, engine: Engine, *, manager: str) -> None:
        self.engine = engine
        self.manager = manager
        self.writes = 0
        self._types: dict[StorageKey, ResourceType] = {}

    def resource(self, key: StorageKey) -> ResourceType:
        found = self._types.get(key)
        if found is None:
            rt = self.engine.registry.for_storage(key)
            if rt is None:
                raise errors.not_found(key.group, key.plural, "")
            self._types[key] = found = rt
        return found

    def _ctx(self) -> WriteContext:
        return WriteContext(manager=self.manager)

    def create(self, key: StorageKey, namespace: str | None, obj: Obj) -> Obj:
        self.writes += 1
        return self.engine.create(self.resource(key), namespace, obj, self._ctx())

    def update(self, key: StorageKey, obj: Obj) -> Obj:
        meta = obj["metadata"]
        self.writes += 1
        updated, _ = self.engine.update(
            self.resource(key), meta.get("namespace"), meta["name"], obj, self._ctx()
        )
        return updated

    def update_status(self, key: StorageKey, obj: Obj) -> Obj:
        """PUT .../status with `obj` (its resourceVersion is the precondition)."""
        meta = obj["metadata"]
        self.writes += 1
        updated, _ = self.engine.update(
            self.resource(key),
            meta.get("namespace"),
            meta["name"],
            obj,
            self._ctx(),
            subresource="status",
        )
        return updated

    def delete(
        self,
        key: StorageKey,
        namespace: str | None,
        name: str,
        *,
        uid: str | None = None,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
    ) -> None:
        self.writes += 1
        self.engine.delete(
            self.resource(key),
            namespace,
            name,
            self._ctx(),
            options=DeleteOptions(
                precondition_uid=uid,
                grace_period_seconds=grace_period_seconds,
                propagation_policy=propagation_policy,
            ),
        )


class LoopController(Generic[K]):
    """Base of the scheduler, kubelet and controllers: one queue, one task, batched passes."""

    name = "controller"
    manager = "kube-controller-manager"

    def __init__(
        self,
        *,
        engine: Engine,
        index: WorkloadIndex,
        timers: TimerHeap,
        clock: SimClock,
        logger: logging.Logger,
        slice_seconds: float = 0.005,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.index = index
        self.timers = timers
        self.clock = clock
        self.logger = logger
        self.slice_seconds = slice_seconds
        self.queue: KeyQueue[K] = KeyQueue(timers=timers)
        self.writer = Writer(engine, manager=self.manager)
        self.failures: dict[K, int] = {}
        self.errors = 0
        self.passes = 0

    # ---- to implement ------------------------------------------------------------------

    def on_event(self, event: StoreEvent) -> None:
        """Map a committed store event to keys of this controller (no writes)."""

    def resync(self) -> None:
        """Queue every key that exists now (at start)."""

    def begin_pass(self) -> None:
        """Called before each batch (drop per-pass caches here)."""

    def process(self, key: K) -> None:
        raise NotImplementedError

    # ---- the loop ----------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return self.queue.idle

    def now(self) -> str:
        return self.engine.now()

    def run_pass(self, keys: list[K]) -> None:
        """Process a batch synchronously (tests and the async loop share it)."""
        self.begin_pass()
        for key in keys:
            self._process_one(key)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.queue.wait()
            keys = self.queue.drain()
            self.passes += 1
            self.begin_pass()
            started = loop.time()
            for key in keys:
                self._process_one(key)
                if loop.time() - started >= self.slice_seconds:
                    await asyncio.sleep(0)
                    started = loop.time()
                    # The world may have moved while we yielded: per-pass caches too.
                    self.begin_pass()
            await asyncio.sleep(0)

    def _process_one(self, key: K) -> None:
        try:
            self.process(key)
        except errors.ApiError as err:
            self._retry(key, err, quiet=err.code in (404, 409))
        except Exception as err:  # a bug must not stop the simulated cluster
            self._retry(key, err, quiet=False)
        else:
            self.failures.pop(key, None)

    def _retry(self, key: K, err: Exception, *, quiet: bool) -> None:
        count = self.failures.get(key, 0) + 1
        self.failures[key] = count
        self.errors += 1
        delay = min(BACKOFF_MAX, BACKOFF_BASE * (2 ** (count - 1)))
        if quiet:
            self.logger.debug("%s: retrying %r in %.3fs: %s", self.name, key, delay, err)
        else:
            self.logger.warning(
                "%s: sync of %r failed (retry in %.3fs): %s",
                self.name,
                key,
                delay,
                err,
                exc_info=not isinstance(err, errors.ApiError),
            )
        self.queue.add_after(key, delay)
