"""EventRecorder: Event bodies, dedup window, 404 fallback, bounded memory, failures contained."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
import structlog
from structlog.testing import CapturingLogger
from structlog.typing import FilteringBoundLogger

from servicegroup.clock import FakeClock
from servicegroup.events import (
    MAX_MESSAGE_BYTES,
    NORMAL,
    WARNING,
    EventClient,
    EventRecorder,
    is_not_found,
    is_retriable,
    truncate_message,
)
from servicegroup.kube.resources import EVENTS, ResourceRef
from servicegroup.metrics import Metrics

GRID: dict[str, Any] = {
    "apiVersion": "superedge.io/v1",
    "kind": "DeploymentGrid",
    "metadata": {"name": "grid", "namespace": "ns", "uid": "uid-1", "resourceVersion": "42"},
    "spec": {"gridUniqKey": "zone"},
}
NODE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "node-1", "uid": "uid-node", "resourceVersion": "7"},
}
START_NANOS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000


async def eventually(predicate: Callable[[], bool], *, timeout: float = 5.0) -> None:
    """Poll `predicate` between event-loop iterations until it holds or `timeout` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0)


class ApiError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class FakeClient:
    """An in-memory Event store recording every request."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str | None, str, Any]] = []
        self.failures: deque[Exception] = deque()
        self.always_fail: Exception | None = None

    def _maybe_fail(self) -> None:
        if self.always_fail is not None:
            raise self.always_fail
        if self.failures:
            raise self.failures.popleft()

    async def create(
        self, ref: ResourceRef, body: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        assert ref == EVENTS
        name = body["metadata"]["name"]
        self.requests.append(("create", namespace, name, copy.deepcopy(body)))
        self._maybe_fail()
        assert namespace == body["metadata"]["namespace"]
        key = (namespace or "", name)
        if key in self.stored:
            raise ApiError(409)
        self.stored[key] = copy.deepcopy(body)
        return body

    async def patch(
        self,
        ref: ResourceRef,
        name: str,
        body: Any,
        *,
        patch_type: Literal["merge", "strategic", "json"],
        namespace: str | None = None,
    ) -> dict[str, Any]:
        assert ref == EVENTS
        assert patch_type == "merge"
        self.requests.append(("patch", namespace, name, copy.deepcopy(body)))
        self._maybe_fail()
        key = (namespace or "", name)
        if key not in self.stored:
            raise ApiError(404)
        self.stored[key].update(body)
        return self.stored[key]

    def verbs(self) -> list[str]:
        return [r[0] for r in self.requests]


def capturing_logger() -> tuple[FilteringBoundLogger, CapturingLogger]:
    capture = CapturingLogger()
    logger: FilteringBoundLogger = structlog.wrap_logger(
        capture,
        processors=[],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    return logger, capture


def make_recorder(
    client: FakeClient, clock: FakeClock, metrics: Metrics, **kwargs: Any
) -> tuple[EventRecorder, CapturingLogger]:
    logger, capture = capturing_logger()
    typed_client: EventClient = client
    recorder = EventRecorder(
        client=typed_client,
        clock=clock,
        metrics=metrics,
        logger=logger,
        instance="controller-pod-0",
        **kwargs,
    )
    return recorder, capture


@asynccontextmanager
async def running(recorder: EventRecorder) -> AsyncIterator[None]:
    task = asyncio.create_task(recorder.run(), name="test-event-recorder")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait((task,))


def sent(metrics: Metrics, type_: str, reason: str) -> float | None:
    return metrics.registry.get_sample_value(
        "servicegroup_events_total", {"type": type_, "reason": reason}
    )


def posted(client: FakeClient, recorder: EventRecorder, count: int) -> Callable[[], bool]:
    return lambda: len(client.requests) >= count and recorder.pending == 0


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


# --- the Event object


async def test_event_body_follows_client_go(
    client: FakeClient, clock: FakeClock, metrics: Metrics
) -> None:
    recorder, _ = make_recorder(client, clock, metrics)
    recorder.event(GRID, type=NORMAL, reason="ChildCreated", message="created grid-zone-a")
    assert client.requests == []  # event() only enqueues
    assert recorder.pending == 1
    async with running(recorder):
        await eventually(lambda: sent(metrics, NORMAL, "ChildCreated") == 1)
    [(verb, namespace, name, body)] = client.requests
    assert verb == "create" and namespace == "ns"
    assert name == f"grid.{START_NANOS:x}"
    assert body == {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "ns"},
        "involvedObject": {
            "apiVersion": "superedge.io/v1",
            "kind": "DeploymentGrid",
            "name": "grid",
            "namespace": "ns",
            "uid": "uid-1",
            "resourceVersion": "42",
        },
        "reason": "ChildCreated",
        "message": "created grid-zone-a",
        "type": "Normal",
        "source": {"component": "servicegroup-controller"},
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "count": 1,
        "reportingComponent": "servicegroup-controller",
        "reportingInstance": "controller-pod-0",
    }


async def test_cluster_scoped_object_events_go_to_default(
    client: FakeClient, clock: FakeClock, metrics: Metrics
) -> None:
    recorder, _ = make_recorder(client, clock, metrics, component="custom")
    recorder.event(NODE, type=WARNING, reason="NodeUnitChanged", message="m")
    async with running(recorder):
        await eventually(posted(client, recorder, 1))
    body = client.requests[0][3]
    assert body["metadata"]["namespace"] == "default"
    assert "namespace" not in body["involvedObject"]
    assert body["source"] == {"component": "custom"}
    assert body["type"] == "Warning"


async def test_same_instant_events_get_distinct_names(
    client: FakeClient, clock: FakeClock, metrics: Metrics
) -> None:
    recorder, _ = make_recorder(client, clock, metrics)
    recorder.event(GRID, type=NORMAL, reason="A", message="m")
    recorder.event(GRID, type=NORMAL, reason="B", message="m")
    async with running(recorder):
        await eventually(posted(client, recorder, 2))
    names = [r[2] for r in client.requests]
    assert names == [f"grid.{START_NANOS:x}", f"grid.{START_NANOS + 1:x}"]
    assert len(client.stored) == 2


def test_message_is_truncated_to_1024_bytes() -> None:
    assert truncate_message("x" * 2000) == "x" * MAX_MESSAGE_BYTES
    assert truncate_message("short") == "short"
    # A multi-byte character is never cut in half.
    cut = truncate_message("é" * 600)
    assert len(cut.encode()) <= MAX_MESSAGE_BYTES
    assert cut == "é" * 512


async def test_long_message_is_sent_truncated(
    client: FakeClient, clock: FakeClock, metrics: Metrics
) -> None:
    recorder, _ = make_recorder(client, clock, metrics)
    recorder.event(GRID, type=WARNING, reason="ApplyFailed", message="y" * 5000)
    async with running(recorder):
        await eventually(posted(client, recorder, 1))
    assert client.requests[0][3]["message"] == "y" * 1024


# --- dedup window


async def test_repeat_within_window_sends_nothing_after_window_patches(
    client: FakeClient, clock: FakeClock, metrics: Metrics
) -> None:
    recorder, _ = make_recorder(client, clock, metrics, dedup_window=600.0)
    async with running(recorder):
        recorder.event(GRID, type=WARNING, reason="ChildConflict", message="not ours")
        await eventually(posted(client, recorder, 1))
        name = client.requests[0][2]

        for _ in range(5):
            recorder.event(GRID, type=WARNING, reason="ChildConflict", message="not ours")
        clock.advance(599.0)
        recorder.event(GRID, type=WARNING, reason="ChildConflict", message="not ours")
        # Deduplicated synchronously: nothing is even queued, so no request can follow.
        assert recorder.pending == 0
        assert client.verbs() == ["create"]

        clock.advance(2.0)
        recorder.event(GRID, type=WARNING, reason="ChildConflict", message="not ours")
        await eventually(posted(client, recorder, 2))
        assert client.requests[1] == (
            "patch",
            "ns",
            name,
            {"count": 2, "lastTimestamp": "2026-01-01T00:10:01Z"},
        )
        assert client.stored[("ns", name)]["count"] == 2

        # The window restarts from that send.
        clock.advance(300.0)
        recorder.event(GRID, type=WARNING, reason="ChildConflict", message="not ours")
        assert recorder.pending == 0
        clock.advance(301.0)
        recorder.event(GRID, type=WARNING, reason="ChildConflict", message="not ours")
        await eventually(posted(client, recorder, 3))
        assert client.requests[2][3]["count"] == 3
    assert client.verbs() == ["create", "patch", "patch"]
    assert sent(metrics, WARNING, "ChildConflict") == 3


async def test_dedup_key_is_uid_type_reason_message(
    client: FakeClient, clock: FakeClock, metrics: Metrics
) -> None:
    recorder, _ = make_recorder(client, clock, metrics)
    other = copy.deepcopy(GRID)
    other["metadata"]["uid"] = "uid-2"
    newer = copy.deepcopy(GRID)
    newer["metadata"]["resourceVersion"] = "43"
    recorder.event(GRID, type=WARNING, reason="R", message="m")
    recorder.event(newer, type=WARNING, reason="R", message="m")  # same key: rv is not in it
    recorder.event(GRID, type=NORMAL, reason="R", message="m")
    recorder.event(GRID, type=WARNING, reason="S", message="m")
    recorder.event(GRID, type=WARNING, reason="R", message="m2")
    recorder.event(other, type=WARNING, reason="R", message="m")
    assert recorder.pending == 5
    async with running(recorder):
        await eventually(posted(client, recorder, 5))
    assert client.verbs() == ["create"] * 5


async def test_patch_of_a_vanished_event_falls_back_to_create(
    client: FakeClient, clock: FakeClock, metrics: Metrics
) -> None:
    recorder, _ = make_recorder(client, clock, metrics)
    async with running(recorder):
        recorder.event(GRID, type=NORMAL, reason="Synced", message="m")
        await eventually(posted(client, recorder, 1))
        name = client.requests[0][2]
        client.stored.clear()  # the API server expired it (events have a TTL)
        clock.advance(601.0)
        recorder.event(GRID, type=NORMAL, reason="Synced", message="m")
        await eventually(posted(client, recorder, 3))
    assert client.verbs() == ["create", "patch", "create"]
    recreated = client.stored[("ns", name)]
    assert recreated["count"] == 2
    assert recreated["firstTimestamp"] == "2026-01-01T00:00:00Z"
    assert recreated["lastTimestamp"] == "2026-01-01T00:10:01Z"
    assert sent(metrics, NORMAL, "Synced") == 2


# --- failures


async def test_failures_never_raise_and_are_retried_with_backoff(
    client: FakeClient, clock: FakeClock, metrics: Metrics
) -> None:
    recorder, capture = make_recorder(client, clock, metrics, max_attempts=4, retry_base=0.5)
    client.always_fail = ConnectionError("connection refused")
    recorder.event(GRID, type=WARNING, reason="ApplyFailed", message="m")  # does not raise
    async with running(recorder):
        for attempt, delay in enumerate((0.5, 1.0, 2.0), start=1):
            await eventually(lambda: len(client.requests) == attempt)  # noqa: B023
            await eventually(lambda: clock.next_deadline() is not None)
            assert clock.next_deadline() == pytest.approx(clock.monotonic() + delay)
            clock.advance(delay)
        await eventually(
            lambda: any(
                c.kwargs.get("event") == "Could not write event, giving up" for c in capture.calls
            )
        )
        assert len(client.requests) == 4
        assert clock.sleepers == 0
        assert sent(metrics, WARNING, "ApplyFailed") is None

        # Not remembered as sent: the next repeat, even within the window, is tried again.
        client.always_fail = None
        recorder.event(GRID, type=WARNING, reason="ApplyFailed", message="m")
        await eventually(lambda: sent(metrics, WARNING, "ApplyFailed") == 1)
    assert client.verbs() == ["create"] * 5


async def test_transient_server_error_is_retried(
    client: FakeClient, clock: FakeClock, metrics: Metrics
) -> None:
    recorder, _ = make_recorder(client, clock, metrics)
    client.failures.extend([ApiError(503), ApiError(429)])
    recorder.event(GRID, type=NORMAL, reason="Synced", message="m")
    async with running(recorder):
        await eventually(lambda: clock.next_deadline() is not None)
        clock.advance(0.5)
        await eventually(lambda: len(client.requests) == 2 and clock.next_deadline() is not None)
        clock.advance(1.0)
        await eventually(lambda: sent(metrics, NORMAL, "Synced") == 1)
    assert len(client.requests) == 3


async def test_rejected_event_is_not_retried(
    client: FakeClient, clock: FakeClock, metrics: Metrics
) -> None:
    recorder, capture = make_recorder(client, clock, metrics)
    client.failures.append(ApiError(403))
    recorder.event(GRID, type=NORMAL, reason="Synced", message="m")
    recorder.event(GRID, type=NORMAL, reason="Other", message="m")
    async with running(recorder):
        await eventually(posted(client, recorder, 2))
        await eventually(lambda: sent(metrics, NORMAL, "Other") == 1)
    assert len(client.requests) == 2  # the 403 was not retried; the next Event went on
    assert clock.sleepers == 0
    assert any(c.method_name == "error" for c in capture.calls)


def test_error_classification() -> None:
    assert is_not_found(ApiError(404))
    assert not is_not_found(ApiError(500))
    assert not is_not_found(RuntimeError())
    assert is_retriable(ConnectionError())
    assert is_retriable(ApiError(0))  # the KubeClient's TransportError carries status 0
    assert is_retriable(ApiError(500)) and is_retriable(ApiError(429))
    assert not is_retriable(ApiError(403)) and not is_retriable(ApiError(422))


def test_bad_input_is_logged_not_raised(
    client: FakeClient, clock: FakeClock, metrics: Metrics
) -> None:
    recorder, capture = make_recorder(client, clock, metrics)
    recorder.event(GRID, type="Info", reason="R", message="m")
    recorder.event({"metadata": {}}, type=NORMAL, reason="R", message="m")
    recorder.event(GRID, type=NORMAL, reason="", message="m")
    recorder.event({"metadata": "garbage"}, type=NORMAL, reason="R", message="m")
    assert recorder.pending == 0
    assert len([c for c in capture.calls if c.method_name == "error"]) == 4


# --- bounded memory


async def test_pending_queue_drops_the_oldest_when_full(
    client: FakeClient, clock: FakeClock, metrics: Metrics
) -> None:
    recorder, capture = make_recorder(client, clock, metrics, queue_size=3)
    for i in range(5):
        recorder.event(GRID, type=NORMAL, reason=f"R{i}", message="m")
    assert recorder.pending == 3
    warnings = [c for c in capture.calls if c.method_name == "warning"]
    assert [w.kwargs["dropped_reason"] for w in warnings] == ["R0", "R1"]
    async with running(recorder):
        await eventually(posted(client, recorder, 3))
        assert [r[3]["reason"] for r in client.requests] == ["R2", "R3", "R4"]
        # A dropped Event was never sent, so its repeat is not deduplicated away.
        recorder.event(GRID, type=NORMAL, reason="R0", message="m")
        await eventually(posted(client, recorder, 4))
    assert client.requests[3][3]["reason"] == "R0"


async def test_dedup_cache_is_an_lru(
    client: FakeClient, clock: FakeClock, metrics: Metrics
) -> None:
    recorder, _ = make_recorder(client, clock, metrics, cache_size=2)
    async with running(recorder):
        recorder.event(GRID, type=NORMAL, reason="A", message="m")
        recorder.event(GRID, type=NORMAL, reason="B", message="m")
        await eventually(posted(client, recorder, 2))
        recorder.event(GRID, type=NORMAL, reason="A", message="m")  # hit: A is now newest
        assert recorder.pending == 0
        recorder.event(GRID, type=NORMAL, reason="C", message="m")  # evicts B
        await eventually(posted(client, recorder, 3))
        recorder.event(GRID, type=NORMAL, reason="A", message="m")
        assert recorder.pending == 0, "A should still be remembered"
        recorder.event(GRID, type=NORMAL, reason="B", message="m")  # forgotten: sent again
        await eventually(posted(client, recorder, 4))
    assert [r[3]["reason"] for r in client.requests] == ["A", "B", "C", "B"]
    assert client.verbs() == ["create"] * 4
