"""The wrapper's HTTP surface over an in-memory cache (no API server involved)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import structlog
from aiohttp import web

from servicegroup.kube.config import ClientConfig
from servicegroup.kube.resources import ENDPOINTS, ENDPOINTSLICES, SERVICES
from servicegroup.metrics import Metrics
from servicegroup.settings import BindAddress
from servicegroup.wrapper.cache import Revisions, WatchCache
from servicegroup.wrapper.proxy import ReverseProxy
from servicegroup.wrapper.server import WrapperServer, accepts_json, match_route

KUBE_PROXY = "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name"
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"


class Ready:
    def __init__(self, ready: bool = True) -> None:
        self.event = asyncio.Event()
        if ready:
            self.event.set()

    def synced(self) -> bool:
        return self.event.is_set()

    async def wait_synced(self) -> None:
        await self.event.wait()


def slice_obj(name: str, ns: str = "ns", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "resourceVersion": "7"},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"]}],
    }


class Harness:
    def __init__(self, metrics: Metrics, *, ready: bool = True, proxy: Any = None) -> None:
        revisions = Revisions(start=500)
        self.slices = WatchCache(ref=ENDPOINTSLICES, revisions=revisions, capacity=4)
        self.services = WatchCache(ref=SERVICES, revisions=revisions)
        self.endpoints = WatchCache(ref=ENDPOINTS, revisions=revisions)
        self.ready = Ready(ready)
        self.metrics = metrics
        self.server = WrapperServer(
            caches={
                ENDPOINTSLICES: self.slices,
                SERVICES: self.services,
                ENDPOINTS: self.endpoints,
            },
            readiness=self.ready,
            proxy=proxy,
            metrics=metrics,
            logger=structlog.get_logger(),
            bookmark_interval=0.05,
            sync_wait=0.2,
        )
        self.url = ""

    def watchers(self, resource: str = "endpointslices.discovery.k8s.io") -> float | None:
        return self.metrics.registry.get_sample_value(
            "servicegroup_wrapper_watchers", {"resource": resource}
        )


@pytest.fixture
async def harness(metrics: Metrics) -> AsyncIterator[Harness]:
    h = Harness(metrics)
    port = await h.server.start(BindAddress("127.0.0.1", 0))
    h.url = f"http://127.0.0.1:{port}"
    try:
        yield h
    finally:
        await h.server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def read_events(
    response: aiohttp.ClientResponse, count: int, *, timeout: float = 5.0
) -> list[dict[str, Any]]:
    events = []
    async with asyncio.timeout(timeout):
        while len(events) < count:
            line = await response.content.readline()
            if not line:
                break
            events.append(orjson.loads(line))
    return events


def test_routes() -> None:
    assert match_route(SLICES) is not None
    route = match_route("/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices/x")
    assert route is not None
    assert (route.ref, route.namespace, route.name) == (ENDPOINTSLICES, "ns", "x")
    route = match_route("/api/v1/watch/namespaces/ns/endpoints")
    assert route is not None and route.legacy_watch and route.ref == ENDPOINTS
    assert match_route("/api/v1/namespaces/ns/services/x/status") is None
    assert match_route("/api/v1/namespaces/ns") is None
    assert match_route("/api/v1/nodes/n") is None
    assert match_route("/apis/discovery.k8s.io/v1beta1/endpointslices") is None


@pytest.mark.parametrize(
    ("accept", "ok"),
    [
        (None, True),
        ("*/*", True),
        ("application/json", True),
        ("application/vnd.kubernetes.protobuf, application/json", True),
        ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json", True),
        ("application/vnd.kubernetes.protobuf", False),
        ("application/json;as=Table;v=v1;g=meta.k8s.io", False),
        ("application/yaml", False),
        ("application/json;q=0", False),
    ],
)
def test_content_negotiation(accept: str | None, ok: bool) -> None:
    assert accepts_json(accept) is ok


async def test_list_has_the_api_server_shape(harness: Harness, http: aiohttp.ClientSession) -> None:
    harness.slices.upsert("ns/a", slice_obj("a"))
    harness.slices.upsert("ns/h", slice_obj("h", **{"service.kubernetes.io/headless": ""}))
    harness.slices.upsert("other/b", slice_obj("b", ns="other"))
    async with http.get(harness.url + SLICES, params={"labelSelector": KUBE_PROXY}) as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        body = await r.json()
    assert body["kind"] == "EndpointSliceList"
    assert body["apiVersion"] == "discovery.k8s.io/v1"
    assert body["metadata"] == {"resourceVersion": str(harness.slices.resource_version)}
    assert [i["metadata"]["name"] for i in body["items"]] == ["a", "b"]
    assert all("kind" not in i and "apiVersion" not in i for i in body["items"])
    async with http.get(
        harness.url + "/apis/discovery.k8s.io/v1/namespaces/other/endpointslices"
    ) as r:
        assert [i["metadata"]["name"] for i in (await r.json())["items"]] == ["b"]


async def test_get_one_object_and_not_found(harness: Harness, http: aiohttp.ClientSession) -> None:
    harness.slices.upsert("ns/a", slice_obj("a"))
    path = "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices/"
    async with http.get(harness.url + path + "a") as r:
        obj = await r.json()
        assert obj["kind"] == "EndpointSlice"
        assert obj["metadata"]["resourceVersion"] == "501"
    async with http.get(harness.url + path + "nope") as r:
        assert r.status == 404
        status = await r.json()
        assert (status["kind"], status["reason"], status["code"]) == ("Status", "NotFound", 404)


async def test_protobuf_only_clients_get_406(harness: Harness, http: aiohttp.ClientSession) -> None:
    headers = {"Accept": "application/vnd.kubernetes.protobuf"}
    async with http.get(harness.url + SLICES, headers=headers) as r:
        assert r.status == 406
        assert (await r.json())["reason"] == "NotAcceptable"


async def test_bad_selectors_are_400(harness: Harness, http: aiohttp.ClientSession) -> None:
    async with http.get(harness.url + SLICES, params={"labelSelector": "a in ("}) as r:
        assert r.status == 400
    async with http.get(harness.url + SLICES, params={"fieldSelector": "spec.x=1"}) as r:
        assert r.status == 400


async def test_not_synced_yet_is_503_after_the_wait(metrics: Metrics) -> None:
    h = Harness(metrics, ready=False)
    port = await h.server.start(BindAddress("127.0.0.1", 0))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}{SLICES}") as r:
                assert r.status == 503
                assert r.headers["Retry-After"] == "1"
            h.ready.event.set()
            async with http.get(f"http://127.0.0.1:{port}{SLICES}") as r:
                assert r.status == 200
    finally:
        await h.server.stop()


async def test_watch_resumes_from_a_list_rv_with_exactly_the_missed_events(
    harness: Harness, http: aiohttp.ClientSession
) -> None:
    harness.slices.upsert("ns/a", slice_obj("a"))
    async with http.get(harness.url + SLICES) as r:
        listed = (await r.json())["metadata"]["resourceVersion"]
    harness.slices.upsert("ns/b", slice_obj("b"))
    harness.slices.delete("ns/a")
    params = {"watch": "true", "resourceVersion": listed, "timeoutSeconds": "5"}
    async with http.get(harness.url + SLICES, params=params) as r:
        assert r.status == 200
        events = await read_events(r, 2)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
            ("ADDED", "b"),
            ("DELETED", "a"),
        ]
        assert events[0]["object"]["kind"] == "EndpointSlice"
        harness.slices.upsert("ns/c", slice_obj("c"))
        (live,) = await read_events(r, 1)
        assert (live["type"], live["object"]["metadata"]["name"]) == ("ADDED", "c")
    sent = harness.metrics.registry.get_sample_value(
        "servicegroup_wrapper_events_sent_total",
        {"resource": "endpointslices.discovery.k8s.io", "type": "ADDED"},
    )
    assert sent == 2


async def test_expired_rv_gets_a_410_error_event(
    harness: Harness, http: aiohttp.ClientSession
) -> None:
    for i in range(10):  # capacity 4: the log compacts
        harness.slices.upsert(f"ns/o{i}", slice_obj(f"o{i}"))
    params = {"watch": "1", "resourceVersion": "501"}
    async with http.get(harness.url + SLICES, params=params) as r:
        assert r.status == 200
        events = await read_events(r, 2)
    assert len(events) == 1
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"


async def test_bookmarks_and_timeout(harness: Harness, http: aiohttp.ClientSession) -> None:
    harness.slices.upsert("ns/a", slice_obj("a"))
    params = {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": "1"}
    async with http.get(harness.url + SLICES, params=params) as r:
        first, bookmark = await read_events(r, 2)
        assert first["type"] == "ADDED"
        assert bookmark["type"] == "BOOKMARK"
        assert bookmark["object"] == {
            "kind": "EndpointSlice",
            "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"resourceVersion": str(harness.slices.resource_version)},
        }
        # timeoutSeconds ends the stream cleanly.
        async with asyncio.timeout(5):
            rest = await r.content.read()
        assert all(orjson.loads(line)["type"] == "BOOKMARK" for line in rest.splitlines())
    assert harness.watchers() == 0


async def test_send_initial_events_ends_with_the_annotated_bookmark(
    harness: Harness, http: aiohttp.ClientSession
) -> None:
    harness.slices.upsert("ns/a", slice_obj("a"))
    params = {
        "watch": "true",
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "5",
    }
    async with http.get(harness.url + SLICES, params=params) as r:
        added, end = await read_events(r, 2)
    assert added["type"] == "ADDED"
    assert end["type"] == "BOOKMARK"
    assert end["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    async with http.get(harness.url + SLICES, params={"watch": "1", "sendInitialEvents": "1"}) as r:
        assert r.status == 422


async def test_watchers_are_released_when_the_client_leaves(
    harness: Harness, http: aiohttp.ClientSession
) -> None:
    params = {"watch": "true", "labelSelector": KUBE_PROXY}
    async with http.get(harness.url + SLICES, params=params) as r:
        assert r.status == 200
        async with asyncio.timeout(5):
            while harness.watchers() != 1:
                await asyncio.sleep(0.01)
        r.close()
    async with asyncio.timeout(5):
        while harness.watchers() != 0 or harness.slices.watchers != 0:
            await asyncio.sleep(0.01)


async def test_stop_ends_open_watches(metrics: Metrics) -> None:
    h = Harness(metrics)
    port = await h.server.start(BindAddress("127.0.0.1", 0))
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{SLICES}?watch=1") as r,
    ):
        async with asyncio.timeout(5):
            while h.watchers() != 1:
                await asyncio.sleep(0.01)
        await h.server.stop()
        async with asyncio.timeout(5):
            assert await r.content.read() == b""
    assert h.watchers() == 0


async def test_everything_else_is_proxied_with_the_wrappers_credentials(metrics: Metrics) -> None:
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def upstream(request: web.Request) -> web.StreamResponse:
        seen.append((request.method, request.path_qs, dict(request.headers), await request.read()))
        response = web.StreamResponse(status=201)
        response.content_type = "application/json"
        await response.prepare(request)
        for i in range(3):
            await response.write(b'{"line":%d}\n' % i)
        await response.write_eof()
        return response

    api = web.Application()
    api.router.add_route("*", "/{tail:.*}", upstream)
    runner = web.AppRunner(api, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    api_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    config = ClientConfig.for_server(f"http://127.0.0.1:{api_port}", token="wrapper-token")
    proxy = ReverseProxy(config=config, user_agent="wrapper-test", logger=structlog.get_logger())
    h = Harness(metrics, proxy=proxy)
    port = await h.server.start(BindAddress("127.0.0.1", 0))
    try:
        async with aiohttp.ClientSession() as http:
            headers = {
                "Authorization": "Bearer client-token",
                "Impersonate-User": "admin",
                "User-Agent": "kube-proxy/v1.32",
            }
            url = f"http://127.0.0.1:{port}/api/v1/namespaces/ns/events?x=1"
            async with http.post(url, data=b'{"a":1}', headers=headers) as r:
                assert r.status == 201
                assert (await r.read()).splitlines() == [
                    b'{"line":0}',
                    b'{"line":1}',
                    b'{"line":2}',
                ]
            # A write to a served resource is not ours to answer either.
            async with http.delete(f"http://127.0.0.1:{port}{SLICES}") as r:
                assert r.status == 201
        method, path, sent_headers, body = seen[0]
        assert (method, path, body) == ("POST", "/api/v1/namespaces/ns/events?x=1", b'{"a":1}')
        assert sent_headers["Authorization"] == "Bearer wrapper-token"
        assert "Impersonate-User" not in sent_headers
        # The wrapper makes the request (its credentials), on behalf of kube-proxy.
        assert sent_headers["User-Agent"] == "wrapper-test kube-proxy/v1.32"
        assert seen[1][0] == "DELETE"
    finally:
        await h.server.stop()
        await proxy.close()
        await runner.cleanup()


async def test_unreachable_api_server_is_503(metrics: Metrics) -> None:
    config = ClientConfig.for_server("http://127.0.0.1:9")  # discard port: nothing listens
    proxy = ReverseProxy(config=config, user_agent="t", logger=structlog.get_logger())
    h = Harness(metrics, proxy=proxy)
    port = await h.server.start(BindAddress("127.0.0.1", 0))
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/api/v1/nodes/n") as r,
        ):
            assert r.status == 503
            assert (await r.json())["reason"] == "ServiceUnavailable"
    finally:
        await h.server.stop()
        await proxy.close()
