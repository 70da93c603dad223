"""A reflector's transform runs page by page on a list; the informer does not run it twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from test_reflector import (
    RecordingSink,
    ScriptedApi,
    cm,
    eventually,
    make_reflector,
    page,
    quiet_logger,
    running,
)

from servicegroup.clock import FakeClock
from servicegroup.informers.informer import SharedInformer
from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import ClientConfig
from servicegroup.kube.resources import CONFIGMAPS
from servicegroup.metrics import Metrics


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
    async with KubeClient(
        config=ClientConfig.for_server(api[1]), metrics=metrics, user_agent="test"
    ) as kube:
        yield kube


async def test_list_items_are_transformed_as_each_page_arrives(
    api: tuple[ScriptedApi, str], client: KubeClient, clock: FakeClock, metrics: Metrics
) -> None:
    scripted, _ = api
    scripted.lists = [
        page([cm("a", "3", big="x" * 100), cm("b", "5", big="y")], "10", cont="tok-1"),
        page([cm("c", "7", big="z")], "10"),
    ]
    seen: list[tuple[str, str]] = []  # (name, list requests made when it was transformed)

    def transform(obj: dict[str, Any]) -> dict[str, Any]:
        seen.append((obj["metadata"]["name"], str(len(scripted.of("list")))))
        return {k: v for k, v in obj.items() if k != "data"}

    sink = RecordingSink()
    reflector = make_reflector(client, sink, clock, metrics, page_size=2, transform=transform)
    async with running(reflector):
        await eventually(lambda: len(scripted.of("watch")) == 1)
    # a and b were transformed before the second page was asked for.
    assert seen == [("a", "1"), ("b", "1"), ("c", "2")]
    assert sink.calls == [("replace", ["a", "b", "c"], "10")]
    assert all("data" not in o for o in sink.objects)
    # apiVersion/kind are restored before the transform sees the item.
    assert {(o["apiVersion"], o["kind"]) for o in sink.objects} == {("v1", "ConfigMap")}


async def test_informer_transforms_each_listed_object_once(
    api: tuple[ScriptedApi, str], client: KubeClient, clock: FakeClock, metrics: Metrics
) -> None:
    scripted, _ = api
    scripted.lists = [page([cm("a", "3", k="v"), cm("b", "4", k="v")], "10")]
    calls: list[str] = []

    def transform(obj: dict[str, Any]) -> dict[str, Any]:
        calls.append(obj["metadata"]["name"])
        return {**obj, "data": {"seen": "once"}}

    informer = SharedInformer(
        client=client,
        ref=CONFIGMAPS,
        namespace="default",
        clock=clock,
        metrics=metrics,
        logger=quiet_logger(),
        transform=transform,
        inactivity_timeout=100_000.0,
    )
    async with running(informer):
        await eventually(informer.has_synced)
    assert sorted(calls) == ["a", "b"]
    obj = informer.store.get("default/a")
    assert obj is not None
    assert obj["data"] == {"seen": "once"}
