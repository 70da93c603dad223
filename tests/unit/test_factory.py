"""InformerFactory: sharing by key, running late informers, cache sync waits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import structlog

from servicegroup.clock import FakeClock
from servicegroup.informers.factory import InformerFactory
from servicegroup.informers.store import NAMESPACE_INDEX, index_by_label, index_by_namespace
from servicegroup.informers.transforms import compose, metadata_only, strip_managed_fields
from servicegroup.kube.resources import CONFIGMAPS, NODES, ResourceRef
from servicegroup.metrics import Metrics


class Never:
    def __aiter__(self) -> Never:
        return self

    async def __anext__(self) -> dict[str, Any]:
        await asyncio.Event().wait()
        raise StopAsyncIteration

    def abort(self) -> None:
        pass


class FakeServer:
    """Lists one object per resource; watches stay silent. Lists of `blocked` refs hang."""

    def __init__(self) -> None:
        self.blocked: set[str] = set()
        self.unblock = asyncio.Event()
        self.listed: list[tuple[str, str | None, str | None]] = []

    async def list(
        self,
        ref: ResourceRef,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        self.listed.append((ref.key, namespace, label_selector))
        if ref.key in self.blocked:
            await self.unblock.wait()
        metadata: dict[str, Any] = {"name": f"{ref.plural}-1", "labels": {"app": "x"}}
        if ref.namespaced:
            metadata["namespace"] = namespace or "default"
        return {"metadata": {"resourceVersion": "5"}, "items": [{"metadata": metadata}]}

    @contextlib.asynccontextmanager
    async def watch(self, ref: ResourceRef, **_: Any) -> AsyncIterator[Never]:
        yield Never()


def quiet_logger() -> Any:
    def drop(*_: Any) -> Any:
        raise structlog.DropEvent

    return structlog.wrap_logger(
        None, processors=[drop], wrapper_class=structlog.make_filtering_bound_logger(logging.INFO)
    )


def make_factory(server: FakeServer, clock: FakeClock, metrics: Metrics) -> InformerFactory:
    return InformerFactory(client=server, metrics=metrics, clock=clock, logger=quiet_logger())


@contextlib.asynccontextmanager
async def running(factory: InformerFactory) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(factory.run(), name="test-factory")
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def eventually(condition: Callable[[], bool], *, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.002)


def test_same_key_same_informer(clock: FakeClock, metrics: Metrics) -> None:
    factory = make_factory(FakeServer(), clock, metrics)
    first = factory.informer(CONFIGMAPS, namespace="a", indexers={"app": index_by_label("app")})
    again = factory.informer(
        CONFIGMAPS, namespace="a", indexers={NAMESPACE_INDEX: index_by_namespace}
    )
    assert again is first
    # Both indices exist on the shared informer (an unknown index would raise KeyError).
    assert first.store.index_keys("app", "x") == []
    assert first.store.index_keys(NAMESPACE_INDEX, "a") == []
    assert factory.informer(CONFIGMAPS, namespace="b") is not first
    assert factory.informer(CONFIGMAPS, namespace="a", label_selector="x=y") is not first
    assert factory.informer(CONFIGMAPS, namespace="a", field_selector="a=b") is not first
    # A cluster-scoped resource has no namespace; asking with one is the same informer.
    assert factory.informer(NODES) is factory.informer(NODES, namespace="ignored")
    assert len(factory.informers) == 5


def test_transform_must_match_and_indexers_must_not_conflict(
    clock: FakeClock, metrics: Metrics
) -> None:
    factory = make_factory(FakeServer(), clock, metrics)
    shaped = factory.informer(NODES, transform=compose(strip_managed_fields, metadata_only))
    assert factory.informer(NODES, transform=compose(strip_managed_fields, metadata_only)) is shaped
    with pytest.raises(ValueError, match="different transform"):
        factory.informer(NODES, transform=strip_managed_fields)
    with pytest.raises(ValueError, match="different transform"):
        factory.informer(NODES)
    factory.informer(CONFIGMAPS, indexers={"app": index_by_label("app")})
    with pytest.raises(ValueError, match="already registered"):
        factory.informer(CONFIGMAPS, indexers={"app": index_by_label("tier")})


async def test_run_starts_informers_requested_before_and_after(
    clock: FakeClock, metrics: Metrics
) -> None:
    server = FakeServer()
    factory = make_factory(server, clock, metrics)
    early = factory.informer(CONFIGMAPS, namespace="a")
    async with running(factory):
        assert await factory.wait_for_cache_sync(timeout=30)
        assert early.store.keys() == ["a/configmaps-1"]
        late = factory.informer(NODES, label_selector="edge=true")
        assert not factory.synced()
        assert await factory.wait_for_cache_sync()
        assert factory.synced()
        assert late.store.keys() == ["nodes-1"]
        with pytest.raises(RuntimeError, match="already running"):
            await factory.run()
    assert sorted(server.listed) == [("configmaps", "a", None), ("nodes", None, "edge=true")]


async def test_wait_for_cache_sync_times_out_on_the_clock(
    clock: FakeClock, metrics: Metrics
) -> None:
    server = FakeServer()
    server.blocked.add("nodes")
    factory = make_factory(server, clock, metrics)
    factory.informer(CONFIGMAPS)
    factory.informer(NODES)
    async with running(factory):
        waiter = asyncio.create_task(factory.wait_for_cache_sync(timeout=10), name="wait")
        await eventually(lambda: clock.sleepers >= 1 and len(server.listed) == 2)
        clock.advance(9)
        await asyncio.sleep(0.02)
        assert not waiter.done()
        clock.advance(1)
        assert await waiter is False
        assert not factory.synced()
        assert factory.informer(CONFIGMAPS).has_synced()

        server.unblock.set()
        assert await factory.wait_for_cache_sync(timeout=10) is True
    assert clock.sleepers == 0  # the timer of the successful wait was cleaned up
