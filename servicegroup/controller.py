"""The Controller: a rate-limited queue of requests, N workers, and the result table.

This is controller-runtime's `pkg/internal/controller` model. Event handlers only enqueue
`Request`s; workers take them from the queue one at a time per key (the queue guarantees that
no key is ever reconciled by two workers at once) and apply the result table:

| reconcile outcome            | queue                         | metrics (result label)          |
|------------------------------|-------------------------------|---------------------------------|
| raises `TerminalError`       | forget (never retried)        | error; errors + terminal errors |
| raises any other `Exception` | add_rate_limited              | error; errors                   |
| `Result(requeue_after=d>0)`  | forget + add_after(d)         | requeue_after                   |
| `Result(requeue=True)`       | add_rate_limited              | requeue                         |
| `Result()`                   | forget                        | success                         |

Invariants: a key is never dropped after N failures (it backs off up to the limiter's cap);
every attempt gets a fresh reconcile ID; every metric series of this controller exists (at zero)
from construction; `CancelledError` is never swallowed.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from structlog.contextvars import bound_contextvars
from structlog.typing import FilteringBoundLogger

from servicegroup.clock import Clock
from servicegroup.metrics import Metrics
from servicegroup.ratelimiters import RateLimiter, default_controller_rate_limiter
from servicegroup.workqueue import RateLimitingQueue, ShutDown

RESULT_SUCCESS = "success"
RESULT_ERROR = "error"
RESULT_REQUEUE = "requeue"
RESULT_REQUEUE_AFTER = "requeue_after"
RESULTS = (RESULT_SUCCESS, RESULT_ERROR, RESULT_REQUEUE, RESULT_REQUEUE_AFTER)


class Request(NamedTuple):
    """The key of one object to reconcile; `namespace` is "" for cluster-scoped objects."""

    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Result:
    """What a reconcile asks for next: nothing, a rate-limited retry, or a retry after a delay.

    As in controller-runtime, `requeue_after` wins over `requeue`, and a `requeue_after` that is
    not positive counts as unset.
    """

    requeue_after: float | None = None
    requeue: bool = False


class TerminalError(Exception):
    """The object cannot be reconciled as it is (invalid spec): retrying will not help."""


class Reconciler(Protocol):
    """Brings the world in line with one object's spec."""

    async def reconcile(self, request: Request, *, log: FilteringBoundLogger) -> Result:
        """Reconcile `request`; `log` is bound with controller, namespace, name, reconcileID."""
        ...


class Controller:
    """A named work queue of `Request`s served by `workers` concurrent workers."""

    def __init__(
        self,
        *,
        name: str,
        reconciler: Reconciler,
        workers: int = 4,
        metrics: Metrics,
        clock: Clock,
        logger: FilteringBoundLogger,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a controller needs at least one worker")
        self.name = name
        self.workers = workers
        self._reconciler = reconciler
        self._metrics = metrics
        self._clock = clock
        self._log = logger.bind(controller=name)
        self.queue: RateLimitingQueue[Request] = RateLimitingQueue(
            name=name,
            clock=clock,
            rate_limiter=rate_limiter or default_controller_rate_limiter(clock),
            metrics=metrics,
        )
        # Pre-create every series at zero, so rates and alerts work before the first event.
        for result in RESULTS:
            metrics.reconcile_total.labels(name, result)
        metrics.reconcile_errors.labels(name)
        metrics.terminal_reconcile_errors.labels(name)
        metrics.reconcile_time.labels(name)
        metrics.active_workers.labels(name).set(0)
        metrics.max_concurrent_reconciles.labels(name).set(workers)

    def enqueue(self, request: Request) -> None:
        """Ask for `request` to be reconciled (collapses with a pending identical request)."""
        self.queue.add(request)

    def enqueue_after(self, request: Request, delay: float) -> None:
        """Ask for `request` to be reconciled in `delay` seconds (the earliest ask wins)."""
        self.queue.add_after(request, delay)

    async def run(self) -> None:
        """Serve the queue until cancelled (or until the queue is shut down).

        On cancellation no new reconcile starts; the ones in flight finish (a second
        cancellation interrupts them), then `CancelledError` propagates.
        """
        self._log.info("Starting workers", worker_count=self.workers)
        async with asyncio.TaskGroup() as group:
            for index in range(self.workers):
                group.create_task(self._worker(), name=f"controller-{self.name}-worker-{index}")
            try:
                await self.queue.run()
            except asyncio.CancelledError:
                self._log.info("Shutdown signal received, waiting for all workers to finish")
                await self.queue.shut_down_with_drain()
                self._log.info("All workers finished")
                raise

    async def _worker(self) -> None:
        while True:
            try:
                request = await self.queue.get()
            except ShutDown:
                return
            try:
                # Once stopping, what is left in the queue is discarded with it.
                if not self.queue.shutting_down:
                    await self._reconcile_handler(request)
            finally:
                self.queue.done(request)

    async def _reconcile_handler(self, request: Request) -> None:
        reconcile_id = str(uuid.uuid4())
        keys = {
            "controller": self.name,
            "namespace": request.namespace,
            "name": request.name,
            "reconcileID": reconcile_id,
        }
        log = self._log.bind(**keys)
        metrics, name = self._metrics, self.name
        metrics.active_workers.labels(name).inc()
        started = self._clock.monotonic()
        try:
            with bound_contextvars(**keys):
                result = await self._reconciler.reconcile(request, log=log)
        except TerminalError as err:
            self.queue.forget(request)
            metrics.terminal_reconcile_errors.labels(name).inc()
            metrics.reconcile_errors.labels(name).inc()
            metrics.reconcile_total.labels(name, RESULT_ERROR).inc()
            log.error("Reconciler error", terminal=True, exc_info=err)
            return
        except Exception as err:
            self.queue.add_rate_limited(request)
            metrics.reconcile_errors.labels(name).inc()
            metrics.reconcile_total.labels(name, RESULT_ERROR).inc()
            log.error("Reconciler error", requeues=self.queue.num_requeues(request), exc_info=err)
            return
        finally:
            metrics.reconcile_time.labels(name).observe(self._clock.monotonic() - started)
            metrics.active_workers.labels(name).dec()

        if result.requeue_after is not None and result.requeue_after > 0:
            self.queue.forget(request)
            self.queue.add_after(request, result.requeue_after)
            metrics.reconcile_total.labels(name, RESULT_REQUEUE_AFTER).inc()
            log.debug("Reconcile done, requeueing after", requeue_after=result.requeue_after)
        elif result.requeue:
            self.queue.add_rate_limited(request)
            metrics.reconcile_total.labels(name, RESULT_REQUEUE).inc()
            log.debug("Reconcile done, requeueing")
        else:
            self.queue.forget(request)
            metrics.reconcile_total.labels(name, RESULT_SUCCESS).inc()
            log.debug("Reconcile successful")
