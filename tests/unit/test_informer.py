"""SharedInformer through its ListWatchClient seam, and the stock transforms."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import structlog

from servicegroup.clock import FakeClock
from servicegroup.informers.informer import HandlerFuncs, SharedInformer
from servicegroup.informers.store import DeletedFinalStateUnknown, index_by_label, object_key
from servicegroup.informers.transforms import (
    LAST_APPLIED_ANNOTATION,
    compose,
    metadata_only,
    strip_managed_fields,
)
from servicegroup.kube.resources import CONFIGMAPS, ResourceRef
from servicegroup.metrics import Metrics

# --- an in-memory list/watch server


class FakeWatch:
    def __init__(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._queue = queue

    def __aiter__(self) -> FakeWatch:
        return self

    async def __anext__(self) -> dict[str, Any]:
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

    def abort(self) -> None:
        self._queue.put_nowait(None)


class FakeListWatch:
    """Lists `objects` (copies, as a server would); watches stream what `push` sends."""

    def __init__(self, objects: list[dict[str, Any]] | None = None, rv: str = "10") -> None:
        self.objects = {object_key(o): o for o in objects or []}
        self.rv = rv
        self.lists = 0
        self.list_gate: asyncio.Event | None = None
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def list(self, ref: ResourceRef, **_: Any) -> dict[str, Any]:
        self.lists += 1
        if self.list_gate is not None:
            await self.list_gate.wait()
        return {
            "metadata": {"resourceVersion": self.rv},
            "items": [copy.deepcopy(o) for o in self.objects.values()],
        }

    @contextlib.asynccontextmanager
    async def watch(self, ref: ResourceRef, **_: Any) -> AsyncIterator[FakeWatch]:
        yield FakeWatch(self.events)

    def push(self, kind: str, obj: dict[str, Any]) -> None:
        self.events.put_nowait({"type": kind, "object": copy.deepcopy(obj)})


def cm(name: str, rv: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, "labels": labels},
    }


class CapturedLogs(list[dict[str, Any]]):
    def processor(self, _: Any, method: str, event_dict: Any) -> Any:
        self.append({"level": method, **event_dict})
        raise structlog.DropEvent


def capture_logger(logs: CapturedLogs | None = None) -> Any:
    sink = logs if logs is not None else CapturedLogs()
    return structlog.wrap_logger(
        None,
        processors=[sink.processor],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )


def make_informer(
    source: FakeListWatch, clock: FakeClock, metrics: Metrics, **kwargs: Any
) -> SharedInformer:
    kwargs.setdefault("logger", capture_logger())
    return SharedInformer(
        client=source,
        ref=CONFIGMAPS,
        clock=clock,
        metrics=metrics,
        rng=random.Random(5),
        inactivity_timeout=100_000.0,
        **kwargs,
    )


@contextlib.asynccontextmanager
async def running(informer: SharedInformer) -> AsyncIterator[None]:
    task = asyncio.create_task(informer.run(), name="test-informer")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def eventually(
    condition: Callable[[], bool], *, clock: FakeClock | None = None, timeout: float = 15.0
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail("condition not reached in time")
        if clock is not None:
            due = clock.next_deadline()
            if due is not None and due - clock.monotonic() <= 100:
                clock.set(max(due, clock.monotonic()))
        await asyncio.sleep(0.002)


class StoreCheckingHandler:
    """Records events and checks, at each call, that the store already reflects it."""

    def __init__(self, informer: SharedInformer) -> None:
        self.informer = informer
        self.seen: list[tuple[str, str, Any]] = []
        self.violations: list[str] = []

    def on_add(self, obj: dict[str, Any], *, is_initial_list: bool) -> None:
        if self.informer.store.get(object_key(obj)) is not obj:
            self.violations.append(f"add {object_key(obj)} before store")
        self.seen.append(("add", obj["metadata"]["name"], is_initial_list))

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if self.informer.store.get(object_key(new)) is not new:
            self.violations.append(f"update {object_key(new)} before store")
        self.seen.append(("update", new["metadata"]["name"], (old["metadata"]["resourceVersion"],)))

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        if object_key(obj) in self.informer.store:
            self.violations.append(f"delete {object_key(obj)} before store")
        tombstone = isinstance(obj, DeletedFinalStateUnknown)
        state = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        name = state["metadata"]["name"]
        self.seen.append(("delete", name, tombstone))


# --- tests


async def test_store_is_updated_before_handlers_in_event_order(
    clock: FakeClock, metrics: Metrics
) -> None:
    source = FakeListWatch([cm("a", "1"), cm("b", "2")])
    informer = make_informer(source, clock, metrics)
    handler = StoreCheckingHandler(informer)
    informer.add_event_handler(handler)
    async with running(informer):
        await eventually(informer.has_synced)
        source.push("ADDED", cm("c", "11"))
        source.push("MODIFIED", cm("a", "12"))
        source.push("DELETED", cm("b", "13"))
        source.push("ADDED", cm("a", "14"))  # ADDED for a cached key is an update
        await eventually(lambda: len(handler.seen) == 6)
    assert handler.violations == []
    assert handler.seen == [
        ("add", "a", True),
        ("add", "b", True),
        ("add", "c", False),
        ("update", "a", ("1",)),
        ("delete", "b", False),
        ("update", "a", ("12",)),
    ]
    assert sorted(informer.store.keys()) == ["ns/a", "ns/c"]


async def test_late_handler_gets_current_contents_then_live_events(
    clock: FakeClock, metrics: Metrics
) -> None:
    source = FakeListWatch([cm("a", "1"), cm("b", "2")])
    informer = make_informer(source, clock, metrics)
    async with running(informer):
        await eventually(informer.has_synced)
        late = StoreCheckingHandler(informer)
        registration = informer.add_event_handler(late)
        # Delivered synchronously, before add_event_handler returned.
        assert sorted(late.seen) == [("add", "a", True), ("add", "b", True)]
        assert registration.has_synced()
        source.push("ADDED", cm("c", "3"))
        await eventually(lambda: len(late.seen) == 3)
    assert late.seen[-1] == ("add", "c", False)
    assert late.violations == []


async def test_has_synced_only_after_the_list_reached_store_and_handlers(
    clock: FakeClock, metrics: Metrics
) -> None:
    source = FakeListWatch([cm("a", "1")])
    source.list_gate = asyncio.Event()
    informer = make_informer(source, clock, metrics)
    synced_when_called: list[bool] = []
    registration = informer.add_event_handler(
        HandlerFuncs(on_add=lambda obj, initial: synced_when_called.append(informer.has_synced()))
    )
    async with running(informer):
        await eventually(lambda: source.lists == 1)
        assert not informer.has_synced() and not registration.has_synced()
        assert len(informer.store) == 0
        source.list_gate.set()
        await informer.wait_synced()
        assert informer.has_synced() and registration.has_synced()
        assert informer.store.keys() == ["ns/a"]
    # Handlers ran while the initial list was being delivered, so not yet synced then.
    assert synced_when_called == [False]


async def test_handler_exception_is_logged_and_isolated(clock: FakeClock, metrics: Metrics) -> None:
    logs = CapturedLogs()
    source = FakeListWatch([cm("a", "1")])
    informer = make_informer(source, clock, metrics, logger=capture_logger(logs))

    def explode(*_: Any) -> None:
        raise RuntimeError("handler bug")

    informer.add_event_handler(
        HandlerFuncs(on_add=explode, on_update=explode, on_delete=explode), name="broken"
    )
    good = StoreCheckingHandler(informer)
    informer.add_event_handler(good)
    async with running(informer):
        await eventually(informer.has_synced)
        source.push("MODIFIED", cm("a", "2"))
        source.push("DELETED", cm("a", "3"))
        source.push("ADDED", cm("b", "4"))
        await eventually(lambda: len(good.seen) == 4)
    assert [kind for kind, *_ in good.seen] == ["add", "update", "delete", "add"]
    failures = [entry for entry in logs if entry["event"] == "event handler failed"]
    assert [f["kind"] for f in failures] == ["add", "update", "delete", "add"]
    assert all(f["handler"] == "broken" and f["level"] == "error" for f in failures)
    assert informer.store.keys() == ["ns/b"]


async def test_removed_handler_is_not_called(clock: FakeClock, metrics: Metrics) -> None:
    source = FakeListWatch()
    informer = make_informer(source, clock, metrics)
    calls: list[str] = []
    registration = informer.add_event_handler(
        HandlerFuncs(on_add=lambda obj, _: calls.append(obj["metadata"]["name"]))
    )
    async with running(informer):
        await eventually(informer.has_synced)
        source.push("ADDED", cm("a", "1"))
        await eventually(lambda: calls == ["a"])
        informer.remove_event_handler(registration)
        informer.remove_event_handler(registration)  # idempotent
        source.push("ADDED", cm("b", "2"))
        await eventually(lambda: "ns/b" in informer.store)
    assert calls == ["a"]
    assert not registration.has_synced()


async def test_indices_follow_events_and_can_be_added_late(
    clock: FakeClock, metrics: Metrics
) -> None:
    source = FakeListWatch([cm("a", "1", zone="z1"), cm("b", "2", zone="z2")])
    informer = make_informer(source, clock, metrics, indexers={"zone": index_by_label("zone")})
    async with running(informer):
        await eventually(informer.has_synced)
        assert informer.store.index_keys("zone", "z1") == ["ns/a"]
        source.push("MODIFIED", cm("b", "3", zone="z1", tier="web"))
        await eventually(lambda: informer.store.index_keys("zone", "z1") == ["ns/a", "ns/b"])
        informer.add_indexers({"tier": index_by_label("tier")})
        assert [o["metadata"]["name"] for o in informer.store.by_index("tier", "web")] == ["b"]
        assert informer.store.by_index("zone", "z2") == []


async def test_transform_applies_before_caching_and_handlers(
    clock: FakeClock, metrics: Metrics
) -> None:
    heavy = cm("a", "1")
    heavy["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    heavy["data"] = {"big": "x" * 100}
    source = FakeListWatch([heavy])
    informer = make_informer(
        source, clock, metrics, transform=compose(strip_managed_fields, metadata_only)
    )
    handed: list[dict[str, Any]] = []
    informer.add_event_handler(HandlerFuncs(on_add=lambda obj, _: handed.append(obj)))
    async with running(informer):
        await eventually(informer.has_synced)
        source.push("ADDED", {**heavy, "metadata": {**heavy["metadata"], "name": "b"}})
        await eventually(lambda: len(handed) == 2)
    for obj in [*handed, *informer.store.list()]:
        assert "data" not in obj and "managedFields" not in obj["metadata"]
        assert obj["kind"] == "ConfigMap"


async def test_relist_notifies_changes_only_and_tombstones_vanished(
    clock: FakeClock, metrics: Metrics
) -> None:
    source = FakeListWatch([cm("same", "1"), cm("changed", "2"), cm("gone", "3")], rv="10")
    informer = make_informer(source, clock, metrics)
    handler = StoreCheckingHandler(informer)
    informer.add_event_handler(handler)
    async with running(informer):
        await eventually(informer.has_synced)
        source.objects = {
            "ns/same": cm("same", "1"),
            "ns/changed": cm("changed", "20"),
            "ns/new": cm("new", "21"),
        }
        source.rv = "30"
        source.events.put_nowait(
            {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
        )
        await eventually(lambda: source.lists == 2 and len(handler.seen) == 6, clock=clock)
    assert handler.violations == []
    assert handler.seen[3:] == [
        ("update", "changed", ("2",)),
        ("add", "new", False),
        ("delete", "gone", True),
    ]
    assert informer.last_sync_resource_version == "30"


async def test_cached_objects_gauge(clock: FakeClock, metrics: Metrics) -> None:
    source = FakeListWatch([cm("a", "1"), cm("b", "2")])
    informer = make_informer(source, clock, metrics)

    def gauge() -> float | None:
        return metrics.registry.get_sample_value(
            "servicegroup_informer_cached_objects", {"resource": "configmaps"}
        )

    async with running(informer):
        await eventually(lambda: gauge() == 2)
        source.push("DELETED", cm("a", "3"))
        await eventually(lambda: gauge() == 1)
        source.push("ADDED", cm("c", "4"))
        await eventually(lambda: gauge() == 2)


async def test_run_twice_is_an_error(clock: FakeClock, metrics: Metrics) -> None:
    informer = make_informer(FakeListWatch(), clock, metrics)
    async with running(informer):
        await eventually(informer.has_synced)
        with pytest.raises(RuntimeError, match="already running"):
            await informer.run()


# --- transforms


def test_strip_managed_fields_copies_only_when_needed() -> None:
    plain = cm("a", "1")
    assert strip_managed_fields(plain) is plain
    heavy = cm("a", "1")
    heavy["metadata"]["managedFields"] = [{"manager": "m"}]
    heavy["metadata"]["annotations"] = {LAST_APPLIED_ANNOTATION: "{...}", "keep": "me"}
    snapshot = copy.deepcopy(heavy)
    stripped = strip_managed_fields(heavy)
    assert heavy == snapshot  # the input is untouched
    assert "managedFields" not in stripped["metadata"]
    assert stripped["metadata"]["annotations"] == {"keep": "me"}
    assert stripped["metadata"]["labels"] is heavy["metadata"]["labels"]  # shared, not copied


def test_metadata_only_and_compose() -> None:
    obj = {**cm("a", "1"), "spec": {"x": 1}, "status": {"y": 2}}
    assert metadata_only(obj) == {k: obj[k] for k in ("apiVersion", "kind", "metadata")}
    first = compose(strip_managed_fields, metadata_only)
    assert first == compose(strip_managed_fields, metadata_only)
    assert first != compose(metadata_only, strip_managed_fields)
    order: list[str] = []

    def tag(label: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def apply(o: dict[str, Any]) -> dict[str, Any]:
            order.append(label)
            return o

        return apply

    compose(compose(tag("1"), tag("2")), tag("3"))(obj)
    assert order == ["1", "2", "3"]
