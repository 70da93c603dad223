"""Controller: workers, the result table with its metrics, reconcile IDs, draining shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import pytest
import structlog
from structlog.contextvars import get_contextvars
from structlog.testing import CapturingLogger
from structlog.typing import FilteringBoundLogger

from servicegroup.clock import FakeClock
from servicegroup.controller import (
    RESULTS,
    Controller,
    Reconciler,
    Request,
    Result,
    TerminalError,
)
from servicegroup.metrics import Metrics
from servicegroup.ratelimiters import ItemExponentialFailureRateLimiter

NAME = "deploymentgrid"
KEY = Request("ns", "grid")


async def eventually(predicate: Callable[[], bool], *, timeout: float = 5.0) -> None:
    """Poll `predicate` between event-loop iterations until it holds or `timeout` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0)


async def settle(iterations: int = 20) -> None:
    """Let ready callbacks run before asserting that something did NOT happen."""
    for _ in range(iterations):
        await asyncio.sleep(0)


class Call(NamedTuple):
    request: Request
    context: dict[str, Any]


class ScriptedReconciler:
    """Returns (or raises) the scripted outcomes in order, then `default` forever."""

    def __init__(
        self, *outcomes: Result | Exception, default: Result | Exception | None = None
    ) -> None:
        self.outcomes: deque[Result | Exception] = deque(outcomes)
        self.default = default if default is not None else Result()
        self.calls: list[Call] = []
        self.advance_clock: tuple[FakeClock, float] | None = None

    async def reconcile(self, request: Request, *, log: FilteringBoundLogger) -> Result:
        log.info("reconciling")
        self.calls.append(Call(request, dict(get_contextvars())))
        if self.advance_clock is not None:
            clock, seconds = self.advance_clock
            clock.advance(seconds)
        outcome = self.outcomes.popleft() if self.outcomes else self.default
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class GatedReconciler:
    """Blocks every reconcile until the test opens its gate; tracks concurrency per key."""

    def __init__(self) -> None:
        self.gates: dict[Request, asyncio.Event] = defaultdict(asyncio.Event)
        self.in_flight: dict[Request, int] = defaultdict(int)
        self.max_in_flight: dict[Request, int] = defaultdict(int)
        self.started: list[Request] = []
        self.finished: list[Request] = []
        self.cancelled: list[Request] = []

    async def reconcile(self, request: Request, *, log: FilteringBoundLogger) -> Result:
        self.started.append(request)
        self.in_flight[request] += 1
        self.max_in_flight[request] = max(self.max_in_flight[request], self.in_flight[request])
        try:
            gate = self.gates[request]
            await gate.wait()
            gate.clear()
        except asyncio.CancelledError:
            self.cancelled.append(request)
            raise
        finally:
            self.in_flight[request] -= 1
        self.finished.append(request)
        return Result()


def capturing_logger() -> tuple[FilteringBoundLogger, CapturingLogger]:
    capture = CapturingLogger()
    logger: FilteringBoundLogger = structlog.wrap_logger(
        capture,
        processors=[],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    return logger, capture


def make_controller(
    reconciler: Reconciler,
    *,
    clock: FakeClock,
    metrics: Metrics,
    workers: int = 2,
    limiter: ItemExponentialFailureRateLimiter | None = None,
) -> tuple[Controller, CapturingLogger]:
    logger, capture = capturing_logger()
    controller = Controller(
        name=NAME,
        reconciler=reconciler,
        workers=workers,
        metrics=metrics,
        clock=clock,
        logger=logger,
        rate_limiter=limiter,
    )
    return controller, capture


@asynccontextmanager
async def running(controller: Controller) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(controller.run(), name="test-controller")
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.wait((task,))
        assert task.cancelled() or task.exception() is None


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"controller": NAME, **labels})


def totals(metrics: Metrics) -> dict[str, float | None]:
    return {r: value(metrics, "controller_runtime_reconcile_total", result=r) for r in RESULTS}


def finished(controller: Controller, metrics: Metrics, count: int) -> Callable[[], bool]:
    """`count` reconciles have been fully handled (result recorded, key done)."""

    def check() -> bool:
        total = sum(v or 0.0 for v in totals(metrics).values())
        return total >= count and controller.queue.processing == 0

    return check


# --- construction


def test_metric_series_exist_at_zero_from_construction(clock: FakeClock, metrics: Metrics) -> None:
    make_controller(ScriptedReconciler(), clock=clock, metrics=metrics, workers=3)
    assert totals(metrics) == {
        "success": 0.0,
        "error": 0.0,
        "requeue": 0.0,
        "requeue_after": 0.0,
    }
    assert value(metrics, "controller_runtime_reconcile_errors_total") == 0
    assert value(metrics, "controller_runtime_terminal_reconcile_errors_total") == 0
    assert value(metrics, "controller_runtime_active_workers") == 0
    assert value(metrics, "controller_runtime_max_concurrent_reconciles") == 3
    assert value(metrics, "controller_runtime_reconcile_time_seconds_count") == 0
    wq = {"name": NAME, "controller": NAME}
    assert metrics.registry.get_sample_value("workqueue_depth", wq) == 0
    assert metrics.registry.get_sample_value("workqueue_adds_total", wq) == 0


def test_needs_a_worker(clock: FakeClock, metrics: Metrics) -> None:
    with pytest.raises(ValueError):
        make_controller(ScriptedReconciler(), clock=clock, metrics=metrics, workers=0)


# --- the result table, one row per test


async def test_success_forgets_the_key(clock: FakeClock, metrics: Metrics) -> None:
    reconciler = ScriptedReconciler(RuntimeError("boom"), Result())
    controller, _ = make_controller(reconciler, clock=clock, metrics=metrics)
    async with running(controller):
        controller.enqueue(KEY)
        await eventually(finished(controller, metrics, 1))
        assert controller.queue.num_requeues(KEY) == 1
        clock.advance(0.005)
        await eventually(finished(controller, metrics, 2))
        assert totals(metrics) == {
            "success": 1.0,
            "error": 1.0,
            "requeue": 0.0,
            "requeue_after": 0.0,
        }
        assert controller.queue.num_requeues(KEY) == 0
        assert controller.queue.delayed == 0 and len(controller.queue) == 0
        assert value(metrics, "controller_runtime_reconcile_time_seconds_count") == 2


async def test_exception_requeues_rate_limited(clock: FakeClock, metrics: Metrics) -> None:
    error = RuntimeError("apply failed")
    reconciler = ScriptedReconciler(error)
    controller, capture = make_controller(reconciler, clock=clock, metrics=metrics)
    async with running(controller):
        controller.enqueue(KEY)
        await eventually(finished(controller, metrics, 1))
        assert totals(metrics)["error"] == 1
        assert totals(metrics)["success"] == 0
        assert value(metrics, "controller_runtime_reconcile_errors_total") == 1
        assert value(metrics, "controller_runtime_terminal_reconcile_errors_total") == 0
        assert controller.queue.num_requeues(KEY) == 1
        assert controller.queue.delayed == 1
        wq = {"name": NAME, "controller": NAME}
        assert metrics.registry.get_sample_value("workqueue_retries_total", wq) == 1
        await eventually(lambda: clock.next_deadline() is not None)
        assert clock.next_deadline() == pytest.approx(clock.monotonic() + 0.005)
    errors = [c for c in capture.calls if c.method_name == "error"]
    assert len(errors) == 1
    assert errors[0].kwargs["exc_info"] is error
    assert errors[0].kwargs["reconcileID"] == reconciler.calls[0].context["reconcileID"]


async def test_terminal_error_is_never_retried(clock: FakeClock, metrics: Metrics) -> None:
    reconciler = ScriptedReconciler(RuntimeError("transient"), TerminalError("bad spec"))
    controller, capture = make_controller(reconciler, clock=clock, metrics=metrics)
    async with running(controller):
        controller.enqueue(KEY)
        await eventually(finished(controller, metrics, 1))
        clock.advance(0.005)
        await eventually(finished(controller, metrics, 2))
        assert totals(metrics) == {
            "success": 0.0,
            "error": 2.0,
            "requeue": 0.0,
            "requeue_after": 0.0,
        }
        assert value(metrics, "controller_runtime_terminal_reconcile_errors_total") == 1
        assert value(metrics, "controller_runtime_reconcile_errors_total") == 2
        assert controller.queue.num_requeues(KEY) == 0  # forgotten
        assert controller.queue.delayed == 0 and len(controller.queue) == 0
        clock.advance(10_000.0)
        await settle()
        assert len(reconciler.calls) == 2
    terminal = [c for c in capture.calls if c.method_name == "error" and c.kwargs.get("terminal")]
    assert len(terminal) == 1


async def test_requeue_after_forgets_then_delays(clock: FakeClock, metrics: Metrics) -> None:
    reconciler = ScriptedReconciler(RuntimeError("transient"), Result(requeue_after=30.0))
    controller, _ = make_controller(reconciler, clock=clock, metrics=metrics)
    async with running(controller):
        controller.enqueue(KEY)
        await eventually(finished(controller, metrics, 1))
        clock.advance(0.005)
        await eventually(finished(controller, metrics, 2))
        assert totals(metrics)["requeue_after"] == 1
        assert totals(metrics)["error"] == 1
        assert controller.queue.num_requeues(KEY) == 0
        assert controller.queue.delayed == 1
        await eventually(lambda: clock.next_deadline() is not None)
        deadline = clock.next_deadline()
        assert deadline is not None
        assert deadline == pytest.approx(clock.monotonic() + 30.0)
        clock.advance(29.9)
        await settle()
        assert len(reconciler.calls) == 2
        clock.set(deadline)
        await eventually(finished(controller, metrics, 3))
        assert len(reconciler.calls) == 3
        assert totals(metrics)["success"] == 1


async def test_requeue_is_rate_limited(clock: FakeClock, metrics: Metrics) -> None:
    reconciler = ScriptedReconciler(Result(requeue=True), Result(requeue=True))
    controller, _ = make_controller(reconciler, clock=clock, metrics=metrics)
    async with running(controller):
        controller.enqueue(KEY)
        await eventually(finished(controller, metrics, 1))
        assert totals(metrics)["requeue"] == 1
        assert value(metrics, "controller_runtime_reconcile_errors_total") == 0
        assert controller.queue.num_requeues(KEY) == 1
        await eventually(lambda: clock.next_deadline() is not None)
        assert clock.next_deadline() == pytest.approx(clock.monotonic() + 0.005)
        clock.advance(0.005)
        await eventually(finished(controller, metrics, 2))
        assert controller.queue.num_requeues(KEY) == 2
        await eventually(lambda: clock.next_deadline() is not None)
        assert clock.next_deadline() == pytest.approx(clock.monotonic() + 0.01)
        clock.advance(0.01)
        await eventually(finished(controller, metrics, 3))
        assert totals(metrics) == {
            "success": 1.0,
            "error": 0.0,
            "requeue": 2.0,
            "requeue_after": 0.0,
        }
        assert controller.queue.num_requeues(KEY) == 0


async def test_reconcile_time_is_observed(clock: FakeClock, metrics: Metrics) -> None:
    reconciler = ScriptedReconciler()
    reconciler.advance_clock = (clock, 2.5)
    controller, _ = make_controller(reconciler, clock=clock, metrics=metrics)
    async with running(controller):
        controller.enqueue(KEY)
        await eventually(finished(controller, metrics, 1))
        assert value(metrics, "controller_runtime_reconcile_time_seconds_sum") == 2.5
        assert value(metrics, "controller_runtime_reconcile_time_seconds_count") == 1


# --- retries are never abandoned


async def test_a_failing_key_retries_forever_with_growing_delays(
    clock: FakeClock, metrics: Metrics
) -> None:
    reconciler = ScriptedReconciler(default=RuntimeError("still broken"))
    limiter = ItemExponentialFailureRateLimiter(base=0.005, max_delay=1.0)
    controller, _ = make_controller(reconciler, clock=clock, metrics=metrics, limiter=limiter)
    delays: list[float] = []
    async with running(controller):
        controller.enqueue(KEY)
        for attempt in range(1, 16):
            await eventually(finished(controller, metrics, attempt))
            await eventually(lambda: clock.next_deadline() is not None)
            deadline = clock.next_deadline()
            assert deadline is not None
            delays.append(deadline - clock.monotonic())
            clock.set(deadline)
        await eventually(finished(controller, metrics, 16))
    expected = [min(0.005 * 2**k, 1.0) for k in range(15)]
    assert delays == pytest.approx(expected)
    assert delays[-1] == pytest.approx(1.0)  # capped, still retrying
    assert len(reconciler.calls) == 16
    assert value(metrics, "controller_runtime_reconcile_errors_total") == 16
    assert controller.queue.num_requeues(KEY) == 16


# --- reconcile IDs and log keys


async def test_each_attempt_gets_a_fresh_reconcile_id(clock: FakeClock, metrics: Metrics) -> None:
    reconciler = ScriptedReconciler(RuntimeError("once"), Result())
    controller, capture = make_controller(reconciler, clock=clock, metrics=metrics)
    async with running(controller):
        controller.enqueue(KEY)
        await eventually(finished(controller, metrics, 1))
        clock.advance(0.005)
        await eventually(finished(controller, metrics, 2))
    ids = [call.context["reconcileID"] for call in reconciler.calls]
    assert len(ids) == 2 and ids[0] != ids[1]
    for call in reconciler.calls:
        # structlog contextvars are bound during the call...
        assert call.context["controller"] == NAME
        assert call.context["namespace"] == "ns"
        assert call.context["name"] == "grid"
    # ...and so is the `log` argument.
    reconciling = [c.kwargs for c in capture.calls if c.kwargs.get("event") == "reconciling"]
    assert [k["reconcileID"] for k in reconciling] == ids
    assert all(k["controller"] == NAME and k["name"] == "grid" for k in reconciling)
    assert all(k["namespace"] == "ns" for k in reconciling)
    assert get_contextvars().get("reconcileID") is None


async def test_cluster_scoped_request_has_empty_namespace(
    clock: FakeClock, metrics: Metrics
) -> None:
    reconciler = ScriptedReconciler()
    controller, _ = make_controller(reconciler, clock=clock, metrics=metrics)
    async with running(controller):
        controller.enqueue(Request("", "node-1"))
        await eventually(finished(controller, metrics, 1))
    assert reconciler.calls[0].request == Request(namespace="", name="node-1")
    assert reconciler.calls[0].context["namespace"] == ""


# --- concurrency


async def test_one_key_is_never_reconciled_by_two_workers(
    clock: FakeClock, metrics: Metrics
) -> None:
    reconciler = GatedReconciler()
    controller, _ = make_controller(reconciler, clock=clock, metrics=metrics, workers=4)
    a, b = Request("ns", "a"), Request("ns", "b")
    async with running(controller):
        controller.enqueue(a)
        await eventually(lambda: reconciler.in_flight[a] == 1)
        controller.enqueue(a)  # changed again while being reconciled
        controller.enqueue(a)
        controller.enqueue(b)
        await eventually(lambda: reconciler.in_flight[b] == 1)  # other keys go in parallel
        assert value(metrics, "controller_runtime_active_workers") == 2
        await settle()
        assert reconciler.in_flight[a] == 1
        reconciler.gates[a].set()
        # The re-add is honoured after the first reconcile is done, exactly once.
        await eventually(lambda: reconciler.started.count(a) == 2)
        reconciler.gates[a].set()
        reconciler.gates[b].set()
        await eventually(finished(controller, metrics, 3))
        assert value(metrics, "controller_runtime_active_workers") == 0
    assert reconciler.max_in_flight[a] == 1
    assert reconciler.started.count(a) == 2
    assert reconciler.started.count(b) == 1


async def test_enqueue_after_waits_for_the_clock(clock: FakeClock, metrics: Metrics) -> None:
    reconciler = ScriptedReconciler()
    controller, _ = make_controller(reconciler, clock=clock, metrics=metrics)
    async with running(controller):
        controller.enqueue_after(KEY, 10.0)
        await eventually(lambda: clock.next_deadline() is not None)
        clock.advance(9.0)
        await settle()
        assert reconciler.calls == []
        clock.advance(1.0)
        await eventually(finished(controller, metrics, 1))
        assert len(reconciler.calls) == 1


# --- shutdown


async def test_cancel_lets_in_flight_reconciles_finish(clock: FakeClock, metrics: Metrics) -> None:
    reconciler = GatedReconciler()
    controller, _ = make_controller(reconciler, clock=clock, metrics=metrics, workers=1)
    a, b = Request("ns", "a"), Request("ns", "b")
    task = asyncio.create_task(controller.run(), name="test-controller")
    controller.enqueue(a)
    controller.enqueue(b)
    await eventually(lambda: reconciler.in_flight[a] == 1)
    task.cancel()
    await eventually(lambda: controller.queue.shutting_down)
    await settle()
    assert not task.done(), "run() returned before the in-flight reconcile finished"
    assert reconciler.cancelled == []
    reconciler.gates[a].set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5.0)
    assert reconciler.finished == [a]
    assert reconciler.started == [a], "a new reconcile started after cancellation"
    assert totals(metrics)["success"] == 1


async def test_second_cancel_interrupts_a_stuck_reconcile(
    clock: FakeClock, metrics: Metrics
) -> None:
    reconciler = GatedReconciler()
    controller, _ = make_controller(reconciler, clock=clock, metrics=metrics, workers=1)
    task = asyncio.create_task(controller.run(), name="test-controller")
    controller.enqueue(KEY)
    await eventually(lambda: reconciler.in_flight[KEY] == 1)
    task.cancel()
    await eventually(lambda: controller.queue.shutting_down)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5.0)
    assert reconciler.cancelled == [KEY]


async def test_run_returns_when_the_queue_is_shut_down(clock: FakeClock, metrics: Metrics) -> None:
    controller, _ = make_controller(ScriptedReconciler(), clock=clock, metrics=metrics)
    task = asyncio.create_task(controller.run(), name="test-controller")
    await settle()
    controller.queue.shut_down()
    await asyncio.wait_for(task, timeout=5.0)
