"""Reflector against a scripted API server over HTTP: paging, RVs, bookmarks, 410, backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

from servicegroup.clock import FakeClock
from servicegroup.informers.informer import SharedInformer
from servicegroup.informers.reflector import Backoff, Reflector
from servicegroup.informers.store import DeletedFinalStateUnknown
from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import ClientConfig
from servicegroup.kube.resources import CONFIGMAPS
from servicegroup.metrics import Metrics

# --- a scripted API server


@dataclass(frozen=True)
class Reply:
    """A non-200 answer (to a list, or to a watch request)."""

    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        return orjson.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "code": self.status,
                "reason": self.reason,
                "message": f"scripted {self.reason}",
            }
        )


class Abort:
    """Close the connection mid-stream, without the final chunk."""


@dataclass(frozen=True)
class Hold:
    """Keep the stream open until the event is set (or the client goes away)."""

    release: asyncio.Event


Step = dict[str, Any] | Reply | Abort | Hold


def cm(name: str, rv: str, **data: str) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "default", "resourceVersion": rv, "uid": name}
    }
    if data:
        obj["data"] = data
    return obj


def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": {"apiVersion": "v1", "kind": "ConfigMap", **obj}}


def bookmark(rv: str) -> dict[str, Any]:
    return {
        "type": "BOOKMARK",
        "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": rv}},
    }


def error_event(code: int, reason: str) -> dict[str, Any]:
    return {
        "type": "ERROR",
        "object": {"kind": "Status", "status": "Failure", "code": code, "reason": reason},
    }


def page(items: list[dict[str, Any]], rv: str, cont: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"resourceVersion": rv}
    if cont:
        metadata["continue"] = cont
    return {"kind": "ConfigMapList", "apiVersion": "v1", "metadata": metadata, "items": items}


class ScriptedApi:
    """Answers list requests and watch requests from two queues; records every request.

    A watch with no script left is held open until the test ends.
    """

    def __init__(self) -> None:
        self.lists: list[dict[str, Any] | Reply] = []
        self.watches: list[list[Step]] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.done = asyncio.Event()

    def of(self, kind: str) -> list[dict[str, str]]:
        return [query for k, query in self.requests if k == kind]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        if query.get("watch") == "true":
            self.requests.append(("watch", query))
            steps: list[Step] = self.watches.pop(0) if self.watches else [Hold(self.done)]
            return await self._watch(request, steps)
        self.requests.append(("list", query))
        answer = self.lists.pop(0) if self.lists else page([], "1")
        if isinstance(answer, Reply):
            return web.Response(
                status=answer.status,
                body=answer.body(),
                headers=answer.headers,
                content_type="application/json",
            )
        return web.json_response(answer)

    async def _watch(self, request: web.Request, steps: list[Step]) -> web.StreamResponse:
        if steps and isinstance(steps[0], Reply):
            reply = steps[0]
            return web.Response(
                status=reply.status,
                body=reply.body(),
                headers=reply.headers,
                content_type="application/json",
            )
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for step in steps:
            if isinstance(step, dict):
                await response.write(orjson.dumps(step) + b"\n")
            elif isinstance(step, Hold):
                await step.release.wait()
            elif isinstance(step, Abort):
                assert request.transport is not None
                request.transport.close()
                return response
        await response.write_eof()
        return response


@pytest.fixture
async def api() -> AsyncIterator[tuple[ScriptedApi, str]]:
    scripted = ScriptedApi()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", scripted.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield scripted, str(server.make_url("")).rstrip("/")
    finally:
        scripted.done.set()
        await server.close()


@pytest.fixture
async def client(api: tuple[ScriptedApi, str], metrics: Metrics) -> AsyncIterator[KubeClient]:
    _, url = api
    async with KubeClient(
        config=ClientConfig.for_server(url), metrics=metrics, user_agent="test"
    ) as kube:
        yield kube


# --- helpers


def quiet_logger() -> Any:
    def drop(_: Any, __: str, event_dict: Any) -> Any:
        raise structlog.DropEvent

    return structlog.wrap_logger(
        None,
        processors=[drop],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )


@dataclass
class RecordingSink:
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def replace(self, objects: list[dict[str, Any]], resource_version: str) -> None:
        self.calls.append(("replace", [o["metadata"]["name"] for o in objects], resource_version))
        self.objects = objects

    def added(self, obj: dict[str, Any]) -> None:
        self.calls.append(("added", obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))

    def modified(self, obj: dict[str, Any]) -> None:
        self.calls.append(("modified", obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))

    def deleted(self, obj: dict[str, Any]) -> None:
        self.calls.append(("deleted", obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))


def make_reflector(
    client: KubeClient, sink: Any, clock: FakeClock, metrics: Metrics, **kwargs: Any
) -> Reflector:
    kwargs.setdefault("inactivity_timeout", 100_000.0)
    return Reflector(
        client=client,
        ref=CONFIGMAPS,
        namespace="default",
        sink=sink,
        clock=clock,
        metrics=metrics,
        logger=quiet_logger(),
        rng=random.Random(7),
        **kwargs,
    )


@contextlib.asynccontextmanager
async def running(reflector: Reflector | SharedInformer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(reflector.run(), name="test-reflector")
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def eventually(
    condition: Callable[[], bool], *, clock: FakeClock | None = None, timeout: float = 15.0
) -> None:
    """Poll `condition`; when given a clock, step it over pending short sleeps (backoffs)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail("condition not reached in time")
        if clock is not None:
            due = clock.next_deadline()
            if due is not None and due - clock.monotonic() <= 100:
                clock.set(max(due, clock.monotonic()))
        await asyncio.sleep(0.005)


def restarts(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "servicegroup_informer_watch_restarts_total",
        {"resource": "configmaps", "reason": reason},
    )
    return value or 0.0


def relists(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value(
        "servicegroup_informer_relists_total", {"resource": "configmaps"}
    )
    return value or 0.0


# --- tests


async def test_paged_list_then_watch_from_list_rv_with_bookmarks(
    api: tuple[ScriptedApi, str], client: KubeClient, clock: FakeClock, metrics: Metrics
) -> None:
    scripted, _ = api
    scripted.lists = [
        page([cm("a", "3"), cm("b", "5")], "10", cont="tok-1"),
        page([cm("c", "7")], "10"),
    ]
    sink = RecordingSink()
    reflector = make_reflector(client, sink, clock, metrics, page_size=2)
    async with running(reflector):
        await eventually(lambda: len(scripted.of("watch")) == 1)
    first, second = scripted.of("list")
    assert first == {"limit": "2"}
    assert second == {"limit": "2", "continue": "tok-1"}
    (watch,) = scripted.of("watch")
    assert watch["resourceVersion"] == "10"
    assert watch["allowWatchBookmarks"] == "true"
    assert 300 <= int(watch["timeoutSeconds"]) <= 600
    assert sink.calls == [("replace", ["a", "b", "c"], "10")]
    # Lists omit apiVersion/kind on items; the reflector restores them.
    assert {(o["apiVersion"], o["kind"]) for o in sink.objects} == {("v1", "ConfigMap")}
    assert relists(metrics) == 1


async def test_bookmark_moves_the_rv_the_next_watch_starts_from(
    api: tuple[ScriptedApi, str], client: KubeClient, clock: FakeClock, metrics: Metrics
) -> None:
    scripted, _ = api
    scripted.lists = [page([cm("a", "3")], "10")]
    scripted.watches = [[event("ADDED", cm("d", "11")), bookmark("15")]]
    sink = RecordingSink()
    reflector = make_reflector(client, sink, clock, metrics)
    async with running(reflector):
        # No clock step: a watch that ended cleanly is re-opened at once.
        await eventually(lambda: len(scripted.of("watch")) == 2)
    assert [w["resourceVersion"] for w in scripted.of("watch")] == ["10", "15"]
    assert sink.calls == [("replace", ["a"], "10"), ("added", "d", "11")]
    assert reflector.last_sync_resource_version == "15"
    assert len(scripted.of("list")) == 1 and relists(metrics) == 1
    assert restarts(metrics, "eof") == 1


async def test_watch_ended_by_server_timeout_is_counted_as_timeout(
    api: tuple[ScriptedApi, str], client: KubeClient, clock: FakeClock, metrics: Metrics
) -> None:
    scripted, _ = api
    release = asyncio.Event()
    scripted.lists = [page([], "10")]
    scripted.watches = [[event("ADDED", cm("d", "11")), Hold(release)]]
    reflector = make_reflector(client, RecordingSink(), clock, metrics)
    async with running(reflector):
        await eventually(lambda: reflector.last_sync_resource_version == "11")
        clock.advance(600)  # the longest timeoutSeconds we may have asked for
        release.set()
        await eventually(lambda: len(scripted.of("watch")) == 2)
    assert restarts(metrics, "timeout") == 1
    assert scripted.of("watch")[1]["resourceVersion"] == "11"


async def test_error_410_in_stream_relists_and_watches_from_the_new_rv(
    api: tuple[ScriptedApi, str], client: KubeClient, clock: FakeClock, metrics: Metrics
) -> None:
    scripted, _ = api
    scripted.lists = [page([cm("a", "3")], "10"), page([cm("a", "30")], "40")]
    scripted.watches = [[event("MODIFIED", cm("a", "12")), error_event(410, "Expired")]]
    sink = RecordingSink()
    reflector = make_reflector(client, sink, clock, metrics)
    async with running(reflector):
        await eventually(lambda: len(scripted.of("watch")) == 2)
    assert sink.calls == [
        ("replace", ["a"], "10"),
        ("modified", "a", "12"),
        ("replace", ["a"], "40"),
    ]
    assert [w["resourceVersion"] for w in scripted.of("watch")] == ["10", "40"]
    # The relist is a fresh consistent list, not a read at the expired RV.
    assert "resourceVersion" not in scripted.of("list")[1]
    assert relists(metrics) == 2
    assert restarts(metrics, "expired") == 1


async def test_410_when_starting_the_watch_relists(
    api: tuple[ScriptedApi, str], client: KubeClient, clock: FakeClock, metrics: Metrics
) -> None:
    scripted, _ = api
    scripted.lists = [page([], "10"), page([cm("b", "50")], "50")]
    scripted.watches = [[Reply(410, "Gone")]]
    sink = RecordingSink()
    reflector = make_reflector(client, sink, clock, metrics)
    async with running(reflector):
        await eventually(lambda: len(scripted.of("watch")) == 2, clock=clock)
    assert sink.calls == [("replace", [], "10"), ("replace", ["b"], "50")]
    assert scripted.of("watch")[1]["resourceVersion"] == "50"
    assert restarts(metrics, "expired") == 1


async def test_abrupt_eof_rewatches_from_last_rv_without_relist(
    api: tuple[ScriptedApi, str], client: KubeClient, clock: FakeClock, metrics: Metrics
) -> None:
    scripted, _ = api
    scripted.lists = [page([cm("a", "3")], "10")]
    scripted.watches = [[event("ADDED", cm("e", "12")), event("DELETED", cm("a", "13")), Abort()]]
    sink = RecordingSink()
    reflector = make_reflector(client, sink, clock, metrics)
    async with running(reflector):
        await eventually(lambda: len(scripted.of("watch")) == 2)  # no clock step: no backoff
    assert [w["resourceVersion"] for w in scripted.of("watch")] == ["10", "13"]
    assert sink.calls == [("replace", ["a"], "10"), ("added", "e", "12"), ("deleted", "a", "13")]
    assert len(scripted.of("list")) == 1
    assert restarts(metrics, "eof") == 1


async def test_429_with_retry_after_backs_off_then_succeeds(
    api: tuple[ScriptedApi, str], client: KubeClient, clock: FakeClock, metrics: Metrics
) -> None:
    scripted, _ = api
    scripted.lists = [Reply(429, "TooManyRequests", {"Retry-After": "5"}), page([], "10")]
    scripted.watches = [[Reply(429, "TooManyRequests", {"Retry-After": "7"})]]
    reflector = make_reflector(client, RecordingSink(), clock, metrics)
    async with running(reflector):
        await eventually(lambda: clock.sleepers == 1)
        start = clock.monotonic()
        due = clock.next_deadline()
        assert due is not None and due - start >= 5.0
        clock.advance(4.9)
        await asyncio.sleep(0.05)
        assert len(scripted.of("list")) == 1  # still waiting out Retry-After
        await eventually(lambda: len(scripted.of("list")) == 2, clock=clock)

        await eventually(lambda: len(scripted.of("watch")) == 1 and clock.sleepers == 1)
        start = clock.monotonic()
        due = clock.next_deadline()
        assert due is not None and due - start >= 7.0
        await eventually(lambda: len(scripted.of("watch")) == 2, clock=clock)
    # A transient error re-opens the watch from the same RV; it does not relist.
    assert scripted.of("watch")[1]["resourceVersion"] == "10"
    assert relists(metrics) == 2  # the failed first attempt counted as one list too
    assert restarts(metrics, "error") == 1


async def test_silent_stream_is_aborted_and_rewatched(
    api: tuple[ScriptedApi, str], client: KubeClient, clock: FakeClock, metrics: Metrics
) -> None:
    scripted, _ = api
    scripted.lists = [page([], "10")]
    scripted.watches = [[event("ADDED", cm("a", "11")), Hold(scripted.done)]]
    reflector = make_reflector(client, RecordingSink(), clock, metrics, inactivity_timeout=60)
    async with running(reflector):
        await eventually(lambda: reflector.last_sync_resource_version == "11")
        await eventually(lambda: clock.sleepers == 1)  # the watchdog
        clock.advance(59)
        await asyncio.sleep(0.05)
        assert len(scripted.of("watch")) == 1
        clock.advance(1)
        await eventually(lambda: len(scripted.of("watch")) == 2)
    assert scripted.of("watch")[1]["resourceVersion"] == "11"
    assert restarts(metrics, "inactive") == 1
    assert len(scripted.of("list")) == 1


async def test_watch_that_ends_at_once_backs_off_instead_of_spinning(
    api: tuple[ScriptedApi, str], client: KubeClient, clock: FakeClock, metrics: Metrics
) -> None:
    scripted, _ = api
    scripted.lists = [page([], "10")]
    scripted.watches = [[], []]
    reflector = make_reflector(client, RecordingSink(), clock, metrics)
    async with running(reflector):
        await eventually(lambda: len(scripted.of("watch")) == 1 and clock.sleepers == 1)
        await asyncio.sleep(0.05)
        assert len(scripted.of("watch")) == 1
        await eventually(lambda: len(scripted.of("watch")) == 3, clock=clock)


async def test_error_event_other_than_410_backs_off_and_rewatches(
    api: tuple[ScriptedApi, str], client: KubeClient, clock: FakeClock, metrics: Metrics
) -> None:
    scripted, _ = api
    scripted.lists = [page([], "10")]
    scripted.watches = [[event("ADDED", cm("a", "11")), error_event(500, "InternalError")]]
    reflector = make_reflector(client, RecordingSink(), clock, metrics)
    async with running(reflector):
        await eventually(lambda: clock.sleepers == 1 and len(scripted.of("watch")) == 1)
        await eventually(lambda: len(scripted.of("watch")) == 2, clock=clock)
    assert scripted.of("watch")[1]["resourceVersion"] == "11"
    assert len(scripted.of("list")) == 1
    assert restarts(metrics, "error") == 1


async def test_expired_continue_token_falls_back_to_a_full_list(
    api: tuple[ScriptedApi, str], client: KubeClient, clock: FakeClock, metrics: Metrics
) -> None:
    scripted, _ = api
    scripted.lists = [
        page([cm("a", "3")], "10", cont="tok-1"),
        Reply(410, "Expired"),
        page([cm("a", "3"), cm("b", "4")], "20"),
    ]
    sink = RecordingSink()
    reflector = make_reflector(client, sink, clock, metrics, page_size=1)
    async with running(reflector):
        await eventually(lambda: len(scripted.of("watch")) == 1)
    assert scripted.of("list") == [{"limit": "1"}, {"limit": "1", "continue": "tok-1"}, {}]
    assert sink.calls == [("replace", ["a", "b"], "20")]
    assert scripted.of("watch")[0]["resourceVersion"] == "20"


async def test_object_deleted_during_a_watch_gap_yields_a_tombstone(
    api: tuple[ScriptedApi, str], client: KubeClient, clock: FakeClock, metrics: Metrics
) -> None:
    scripted, _ = api
    scripted.lists = [
        page([cm("a", "3"), cm("b", "4", k="old")], "10"),
        # History expired; meanwhile b was deleted, a changed and c appeared.
        page([cm("a", "33"), cm("c", "35")], "40"),
    ]
    scripted.watches = [[Abort()], [Reply(410, "Expired")]]
    informer = SharedInformer(
        client=client,
        ref=CONFIGMAPS,
        namespace="default",
        clock=clock,
        metrics=metrics,
        logger=quiet_logger(),
        inactivity_timeout=100_000.0,
        rng=random.Random(3),
    )
    seen: list[tuple[str, Any]] = []

    class Handler:
        def on_add(self, obj: dict[str, Any], *, is_initial_list: bool) -> None:
            seen.append(("add", (obj["metadata"]["name"], is_initial_list)))

        def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
            seen.append(("update", (old["metadata"]["resourceVersion"], new["metadata"]["name"])))

        def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
            seen.append(("delete", obj))

    informer.add_event_handler(Handler())
    async with running(informer):
        await eventually(
            lambda: (
                len(scripted.of("list")) == 2
                and informer.store.keys()
                == [
                    "default/a",
                    "default/c",
                ]
            ),
            clock=clock,
        )
    assert seen[:2] == [("add", ("a", True)), ("add", ("b", True))]
    assert seen[2:4] == [("update", ("3", "a")), ("add", ("c", False))]
    ((kind, tombstone),) = seen[4:]
    assert kind == "delete"
    assert isinstance(tombstone, DeletedFinalStateUnknown)
    assert tombstone.key == "default/b"
    assert tombstone.obj["data"] == {"k": "old"}
    assert informer.store.get("default/b") is None


def test_backoff_grows_caps_and_resets_after_quiet_period(clock: FakeClock) -> None:
    backoff = Backoff(clock=clock, rng=random.Random(1), initial=0.8, cap=30.0, reset_after=120)
    delays = [backoff.next_delay() for _ in range(8)]
    assert 0.8 <= delays[0] < 1.6
    assert 1.6 <= delays[1] < 3.2
    assert all(d <= 30.0 for d in delays)
    assert delays[-1] == 30.0  # 0.8 * 2**7 > 30: capped
    clock.advance(121)
    assert backoff.next_delay() < 1.6
