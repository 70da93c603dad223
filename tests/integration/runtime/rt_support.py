"""Helpers of the runtime-against-kubesim suite (reflector, informer, client, elector).

Everything here talks to a real in-process KubeSim over HTTP through the real `KubeClient`;
time is the real clock. Waits poll a condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

from servicegroup.clock import RealClock
from servicegroup.informers.store import DeletedFinalStateUnknown, object_key
from servicegroup.metrics import Metrics

USER_AGENT = "servicegroup/test (runtime-kubesim)"


async def eventually(
    predicate: Callable[[], Any],
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
    what: str = "condition",
) -> Any:
    """Poll a sync or async predicate until it returns a truthy value; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout:g}s")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running(coro: Coroutine[Any, Any, Any], *, name: str) -> AsyncIterator[asyncio.Task[Any]]:
    """Run `coro` as a named task for the block; cancel and await it on the way out.

    A task that already failed (not by cancellation) re-raises its exception at exit.
    """
    task = asyncio.create_task(coro, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class CapturedLogs(list[dict[str, Any]]):
    """Structlog events of one test, for asserting what a component reported."""

    def processor(self, _: Any, method: str, event_dict: Any) -> Any:
        self.append({"level": method, **event_dict})
        raise structlog.DropEvent

    def events(self, text: str) -> list[dict[str, Any]]:
        return [entry for entry in self if text in str(entry.get("event", ""))]


def capture_logger(logs: CapturedLogs) -> Any:
    return structlog.wrap_logger(
        None,
        processors=[logs.processor],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )


def sample(metrics: Metrics, metric: str, /, **labels: str) -> float:
    """A sample's value from the registry (0.0 when the series does not exist)."""
    value = metrics.registry.get_sample_value(metric, labels)
    return 0.0 if value is None else value


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def cm(name: str, namespace: str, *, labels: dict[str, str] | None = None, **data: str) -> Any:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
    }
    if labels:
        body["metadata"]["labels"] = labels
    if data:
        body["data"] = data
    return body


@dataclass
class RecordingSink:
    """A reflector sink that keeps the content and every call, in order."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, int]] = field(default_factory=list)  # (kind, key, rv)
    replaces: list[tuple[list[str], str]] = field(default_factory=list)

    def replace(self, objects: list[dict[str, Any]], resource_version: str) -> None:
        self.objects = {object_key(obj): obj for obj in objects}
        self.replaces.append((sorted(self.objects), resource_version))

    def added(self, obj: dict[str, Any]) -> None:
        self.objects[object_key(obj)] = obj
        self.calls.append(("ADDED", object_key(obj), rv(obj)))

    def modified(self, obj: dict[str, Any]) -> None:
        self.objects[object_key(obj)] = obj
        self.calls.append(("MODIFIED", object_key(obj), rv(obj)))

    def deleted(self, obj: dict[str, Any]) -> None:
        self.objects.pop(object_key(obj), None)
        self.calls.append(("DELETED", object_key(obj), rv(obj)))

    def content(self) -> dict[str, int]:
        return {key: rv(obj) for key, obj in self.objects.items()}


@dataclass
class RecordingHandler:
    """An informer handler mirroring what it is told, checking store-then-notify as it goes."""

    store: Any = None  # the informer's ReadOnlyStore, set before registering
    mirror: dict[str, dict[str, Any]] = field(default_factory=dict)
    adds: list[tuple[str, bool]] = field(default_factory=list)
    updates: list[tuple[str, int, int]] = field(default_factory=list)
    deletes: list[tuple[str, bool]] = field(default_factory=list)  # (key, was_tombstone)
    tombstones: list[DeletedFinalStateUnknown] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    rvs_by_key: dict[str, list[int]] = field(default_factory=dict)

    def _seen(self, key: str, obj: dict[str, Any]) -> None:
        self.rvs_by_key.setdefault(key, []).append(rv(obj))

    def on_add(self, obj: dict[str, Any], *, is_initial_list: bool) -> None:
        key = object_key(obj)
        if self.store is not None and self.store.get(key) is not obj:
            self.violations.append(f"add {key}: not the stored object")
        self.mirror[key] = obj
        self.adds.append((key, is_initial_list))
        self._seen(key, obj)

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        key = object_key(new)
        if self.store is not None and self.store.get(key) is not new:
            self.violations.append(f"update {key}: not the stored object")
        if self.mirror.get(key) is not old:
            self.violations.append(f"update {key}: old is not what was last delivered")
        self.mirror[key] = new
        self.updates.append((key, rv(old), rv(new)))
        self._seen(key, new)

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        key = object_key(obj)
        if self.store is not None and key in self.store:
            self.violations.append(f"delete {key}: still in the store")
        self.mirror.pop(key, None)
        self.deletes.append((key, isinstance(obj, DeletedFinalStateUnknown)))
        if isinstance(obj, DeletedFinalStateUnknown):
            self.tombstones.append(obj)

    def content(self) -> dict[str, int]:
        return {key: rv(obj) for key, obj in self.mirror.items()}


class RecordingClock(RealClock):
    """The real clock, remembering every sleep it was asked for (to check backoff policy)."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


@dataclass
class Interval:
    """When one candidate's leader callback ran (monotonic seconds)."""

    who: str
    start: float
    end: float | None = None


class LeadershipLog:
    """Records every leader-callback run, to check that no two ever overlap."""

    def __init__(self) -> None:
        self.intervals: list[Interval] = []

    def callback(self, who: str) -> Callable[[], Awaitable[None]]:
        async def lead() -> None:
            interval = Interval(who, time.monotonic())
            self.intervals.append(interval)
            try:
                await asyncio.Event().wait()
            finally:
                interval.end = time.monotonic()

        return lead

    def leaders(self) -> list[str]:
        return [i.who for i in self.intervals]

    def current(self) -> list[str]:
        return [i.who for i in self.intervals if i.end is None]

    def overlaps(self) -> list[tuple[str, str]]:
        found = []
        ordered = sorted(self.intervals, key=lambda i: i.start)
        for first, second in itertools.pairwise(ordered):
            if first.end is None or first.end > second.start:
                found.append((first.who, second.who))
        return found
