"""KubeClient against a scripted aiohttp server: paths, params, headers, bodies, errors, metrics."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from servicegroup.kube.client import KubeClient
from servicegroup.kube.config import ClientConfig
from servicegroup.kube.errors import (
    ApiError,
    TransportError,
    is_already_exists,
    is_conflict,
    is_gone,
    is_invalid,
    is_not_found,
    is_retryable,
    is_too_many_requests,
    parse_retry_after,
)
from servicegroup.kube.resources import CONFIGMAPS, DEPLOYMENTS, NODES
from servicegroup.metrics import Metrics

UA = "servicegroup/0.1.0 (test)"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeApi:
    """Records each request; answers with the next scripted responder (default: echo JSON)."""

    requests: list[Recorded] = field(default_factory=list)
    script: list[Responder] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                await request.read(),
            )
        )
        if self.script:
            return await self.script.pop(0)(request)
        return web.json_response({"kind": "Echo", "metadata": {"name": "x"}})

    def reply(
        self, status: int, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> None:
        async def respond(_: web.Request) -> web.StreamResponse:
            if isinstance(body, bytes | str):
                return web.Response(status=status, body=body, headers=headers)
            return web.json_response(body, status=status, headers=headers)

        self.script.append(respond)


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeApi, TestServer]]:
    fake = FakeApi()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, server
    finally:
        await server.close()


def url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def client(api: tuple[FakeApi, TestServer], metrics: Metrics) -> AsyncIterator[KubeClient]:
    _, server = api
    config = ClientConfig.for_server(url(server), token="s3cret")
    async with KubeClient(config=config, metrics=metrics, user_agent=UA) as kube:
        yield kube


def status_body(code: int, reason: str, message: str = "boom", **extra: Any) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        **extra,
    }


async def test_get_paths_and_headers(api: tuple[FakeApi, TestServer], client: KubeClient) -> None:
    fake, _ = api
    got = await client.get(DEPLOYMENTS, "web", namespace="prod")
    await client.get(NODES, "n1")
    await client.get(DEPLOYMENTS, "web", namespace="prod", subresource="status")
    assert got["kind"] == "Echo"
    assert [r.path for r in fake.requests] == [
        "/apis/apps/v1/namespaces/prod/deployments/web",
        "/api/v1/nodes/n1",
        "/apis/apps/v1/namespaces/prod/deployments/web/status",
    ]
    first = fake.requests[0]
    assert first.method == "GET"
    assert first.headers["User-Agent"] == UA
    assert first.headers["Accept"] == "application/json"
    assert first.headers["Authorization"] == "Bearer s3cret"


async def test_list_query_params_only_when_given(
    api: tuple[FakeApi, TestServer], client: KubeClient
) -> None:
    fake, _ = api
    await client.list(CONFIGMAPS)
    await client.list(
        CONFIGMAPS,
        namespace="ns",
        label_selector="a=b,c",
        field_selector="metadata.name=x",
        limit=50,
        continue_token="tok",
        resource_version="12",
        resource_version_match="NotOlderThan",
    )
    assert fake.requests[0].path == "/api/v1/configmaps"
    assert fake.requests[0].query == {}
    assert fake.requests[1].path == "/api/v1/namespaces/ns/configmaps"
    assert fake.requests[1].query == {
        "labelSelector": "a=b,c",
        "fieldSelector": "metadata.name=x",
        "limit": "50",
        "continue": "tok",
        "resourceVersion": "12",
        "resourceVersionMatch": "NotOlderThan",
    }


async def test_create_replace_take_namespace_from_body(
    api: tuple[FakeApi, TestServer], client: KubeClient
) -> None:
    fake, _ = api
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}}
    await client.create(CONFIGMAPS, body, field_manager="mgr")
    await client.replace(CONFIGMAPS, body)
    create, replace = fake.requests
    assert (create.method, create.path) == ("POST", "/api/v1/namespaces/a/configmaps")
    assert create.query == {"fieldManager": "mgr"}
    assert create.headers["Content-Type"] == "application/json"
    assert orjson.loads(create.body) == body
    assert (replace.method, replace.path) == ("PUT", "/api/v1/namespaces/a/configmaps/c")


async def test_namespace_required_and_consistent(
    api: tuple[FakeApi, TestServer], client: KubeClient
) -> None:
    fake, _ = api
    with pytest.raises(ValueError, match="namespaced"):
        await client.create(CONFIGMAPS, {"metadata": {"name": "c"}})
    with pytest.raises(ValueError, match="does not match"):
        await client.create(
            CONFIGMAPS, {"metadata": {"name": "c", "namespace": "a"}}, namespace="b"
        )
    with pytest.raises(ValueError, match="namespaced"):
        await client.get(CONFIGMAPS, "c")
    assert fake.requests == []


async def test_apply_is_a_forced_apply_patch(
    api: tuple[FakeApi, TestServer], client: KubeClient
) -> None:
    fake, _ = api
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}
    await client.apply(DEPLOYMENTS, body, field_manager="servicegroup-controller", namespace="n")
    await client.apply(DEPLOYMENTS, body, field_manager="m", namespace="n", force=False)
    forced, unforced = fake.requests
    assert forced.method == "PATCH"
    assert forced.path == "/apis/apps/v1/namespaces/n/deployments/d"
    assert forced.headers["Content-Type"] == "application/apply-patch+yaml"
    assert forced.query == {"fieldManager": "servicegroup-controller", "force": "true"}
    assert orjson.loads(forced.body) == body
    assert unforced.query == {"fieldManager": "m"}


@pytest.mark.parametrize(
    ("patch_type", "content_type"),
    [
        ("merge", "application/merge-patch+json"),
        ("strategic", "application/strategic-merge-patch+json"),
        ("json", "application/json-patch+json"),
    ],
)
async def test_patch_content_type_per_patch_type(
    api: tuple[FakeApi, TestServer], client: KubeClient, patch_type: Any, content_type: str
) -> None:
    fake, _ = api
    body: Any = (
        [{"op": "add", "path": "/metadata/labels/a", "value": "b"}]
        if patch_type == "json"
        else {"metadata": {"labels": {"a": "b"}}}
    )
    await client.patch(
        DEPLOYMENTS, "d", body, patch_type=patch_type, namespace="n", subresource="status"
    )
    (req,) = fake.requests
    assert req.method == "PATCH"
    assert req.path == "/apis/apps/v1/namespaces/n/deployments/d/status"
    assert req.headers["Content-Type"] == content_type
    assert orjson.loads(req.body) == body


async def test_delete_sends_delete_options(
    api: tuple[FakeApi, TestServer], client: KubeClient
) -> None:
    fake, _ = api
    await client.delete(
        DEPLOYMENTS,
        "d",
        namespace="n",
        propagation_policy="Foreground",
        preconditions={"uid": "u-1"},
        grace_period_seconds=0,
    )
    (req,) = fake.requests
    assert (req.method, req.path) == ("DELETE", "/apis/apps/v1/namespaces/n/deployments/d")
    assert orjson.loads(req.body) == {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "propagationPolicy": "Foreground",
        "preconditions": {"uid": "u-1"},
        "gracePeriodSeconds": 0,
    }


async def test_status_errors_are_classified(
    api: tuple[FakeApi, TestServer], client: KubeClient
) -> None:
    fake, _ = api
    causes = [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.x"}]
    fake.reply(404, status_body(404, "NotFound", 'configmaps "c" not found'))
    fake.reply(409, status_body(409, "AlreadyExists"))
    fake.reply(409, status_body(409, "Conflict", "the object has been modified"))
    fake.reply(422, status_body(422, "Invalid", details={"causes": causes}))
    fake.reply(410, status_body(410, "Expired", "too old resource version"))
    fake.reply(429, status_body(429, "TooManyRequests"), headers={"Retry-After": "3"})
    fake.reply(500, status_body(500, "InternalError"))
    errors: list[ApiError] = []
    for _ in range(7):
        with pytest.raises(ApiError) as info:
            await client.get(CONFIGMAPS, "c", namespace="n")
        errors.append(info.value)
    not_found, exists, conflict, invalid, expired, throttled, internal = errors
    assert is_not_found(not_found) and not_found.message == 'configmaps "c" not found'
    assert not is_conflict(not_found)
    assert is_already_exists(exists) and not is_conflict(exists)
    assert is_conflict(conflict) and not is_already_exists(conflict)
    assert is_invalid(invalid)
    assert invalid.causes[0].field == "spec.x"
    assert invalid.causes[0].reason == "FieldValueRequired"
    assert is_gone(expired) and expired.reason == "Expired"
    assert is_too_many_requests(throttled) and throttled.retry_after == 3.0
    assert is_retryable(throttled) and is_retryable(internal)
    assert not is_retryable(not_found) and not is_retryable(conflict)
    assert not isinstance(internal, TransportError)
    assert [e.status for e in errors] == [404, 409, 409, 422, 410, 429, 500]


async def test_non_status_error_body(api: tuple[FakeApi, TestServer], client: KubeClient) -> None:
    fake, _ = api
    fake.reply(503, "<html>upstream unavailable</html>")
    fake.reply(404, b"")
    with pytest.raises(ApiError) as info:
        await client.get(NODES, "n")
    assert info.value.status == 503
    assert info.value.reason == "ServiceUnavailable"
    assert "upstream unavailable" in info.value.message
    assert is_retryable(info.value)
    with pytest.raises(ApiError) as info:
        await client.get(NODES, "n")
    assert is_not_found(info.value)
    assert "404" in info.value.message


def test_predicates_ignore_other_exceptions_and_use_codes_for_unknown_reasons() -> None:
    assert not is_not_found(ValueError("x"))
    assert not is_retryable(RuntimeError("x"))
    assert is_not_found(ApiError(404, "SomethingNew", "m"))
    assert not is_not_found(ApiError(404, "Forbidden", "m"))
    assert is_gone(ApiError(410, "Gone", "m"))
    assert is_retryable(TransportError("reset"))
    assert TransportError("x").status == 0


def test_retry_after_parsing() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_metrics_recorded_per_attempt(
    api: tuple[FakeApi, TestServer], client: KubeClient, metrics: Metrics
) -> None:
    fake, server = api
    await client.get(NODES, "a")
    fake.reply(404, status_body(404, "NotFound"))
    with pytest.raises(ApiError):
        await client.get(NODES, "b")
    host = f"127.0.0.1:{server.port}"
    registry = metrics.registry
    labels = {"method": "GET", "host": host}
    assert registry.get_sample_value("rest_client_requests_total", {"code": "200", **labels}) == 1
    assert registry.get_sample_value("rest_client_requests_total", {"code": "404", **labels}) == 1
    duration = registry.get_sample_value(
        "rest_client_request_duration_seconds_count", {"verb": "GET", "host": host}
    )
    assert duration == 2


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_a_transport_error(metrics: Metrics) -> None:
    port = unused_port()
    config = ClientConfig.for_server(f"http://127.0.0.1:{port}")
    async with KubeClient(config=config, metrics=metrics, user_agent=UA) as kube:
        with pytest.raises(TransportError) as info:
            await kube.get(NODES, "n")
    assert info.value.status == 0 and is_retryable(info.value)
    assert (
        metrics.registry.get_sample_value(
            "rest_client_requests_total",
            {"code": "<error>", "method": "GET", "host": f"127.0.0.1:{port}"},
        )
        == 1
    )


async def test_request_timeout_is_a_transport_error(
    api: tuple[FakeApi, TestServer], metrics: Metrics
) -> None:
    fake, server = api
    release = asyncio.Event()

    async def hang(_: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.json_response({})

    fake.script.append(hang)
    config = ClientConfig.for_server(url(server))
    async with KubeClient(
        config=config, metrics=metrics, user_agent=UA, request_timeout=0.2
    ) as kube:
        with pytest.raises(TransportError) as info:
            await kube.get(NODES, "n")
    release.set()
    assert "Timeout" in info.value.message


class CountingCredentials:
    def __init__(self, *, refreshable: bool) -> None:
        self.refreshable = refreshable
        self.generation = 0
        self.invalidations = 0

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer gen-{self.generation}"}

    def invalidate(self) -> bool:
        self.invalidations += 1
        if self.refreshable:
            self.generation += 1
        return self.refreshable


async def test_401_with_refreshable_credentials_retries_once(
    api: tuple[FakeApi, TestServer], metrics: Metrics
) -> None:
    fake, server = api
    creds = CountingCredentials(refreshable=True)
    config = ClientConfig(server=url(server), credentials=creds)
    async with KubeClient(config=config, metrics=metrics, user_agent=UA) as kube:
        fake.reply(401, status_body(401, "Unauthorized"))
        assert (await kube.get(NODES, "n"))["kind"] == "Echo"
        assert [r.headers["Authorization"] for r in fake.requests] == [
            "Bearer gen-0",
            "Bearer gen-1",
        ]
        fake.reply(401, status_body(401, "Unauthorized"))
        fake.reply(401, status_body(401, "Unauthorized"))
        with pytest.raises(ApiError) as info:
            await kube.get(NODES, "n")
        assert info.value.status == 401
        assert len(fake.requests) == 4  # one retry, not a loop


async def test_401_with_static_credentials_is_not_retried(
    api: tuple[FakeApi, TestServer], metrics: Metrics
) -> None:
    fake, server = api
    creds = CountingCredentials(refreshable=False)
    config = ClientConfig(server=url(server), credentials=creds)
    async with KubeClient(config=config, metrics=metrics, user_agent=UA) as kube:
        fake.reply(401, status_body(401, "Unauthorized"))
        with pytest.raises(ApiError):
            await kube.get(NODES, "n")
    assert len(fake.requests) == 1 and creds.invalidations == 1


async def test_request_escape_hatch(api: tuple[FakeApi, TestServer], client: KubeClient) -> None:
    fake, _ = api
    fake.reply(200, "ok")
    assert await client.request("get", "/healthz", params={"verbose": True}) == "ok"
    assert fake.requests[0].query == {"verbose": "true"}
    result = await client.request("POST", "/apis/x/v1/things", json_body={"a": 1})
    assert result == {"kind": "Echo", "metadata": {"name": "x"}}
    assert orjson.loads(fake.requests[1].body) == {"a": 1}


async def test_closed_client_refuses_requests(metrics: Metrics) -> None:
    kube = KubeClient(
        config=ClientConfig.for_server("http://127.0.0.1:1"), metrics=metrics, user_agent=UA
    )
    await kube.close()
    with pytest.raises(RuntimeError, match="closed"):
        await kube.get(NODES, "n")


# --- watch


def stream_of(*chunks: bytes, abort: bool = False) -> Responder:
    async def respond(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
            await asyncio.sleep(0)
        if abort:
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write_eof()
        return response

    return respond


def event_line(kind: str, name: str, rv: str, pad: int = 0) -> bytes:
    obj = {"kind": "ConfigMap", "metadata": {"name": name, "resourceVersion": rv}}
    if pad:
        obj["data"] = {"blob": "x" * pad}
    return orjson.dumps({"type": kind, "object": obj}) + b"\n"


async def test_watch_streams_events_across_chunk_boundaries(
    api: tuple[FakeApi, TestServer], client: KubeClient
) -> None:
    fake, _ = api
    a, b, big = (
        event_line("ADDED", "a", "1"),
        event_line("MODIFIED", "b", "2"),
        event_line("ADDED", "big", "3", pad=300_000),
    )
    both = a + b
    chunks = [both[:5], both[5:40], both[40:], big[:1000], big[1000:150_000], big[150_000:]]
    chunks.append(b'\n{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}')
    fake.script.append(stream_of(*chunks))
    async with client.watch(
        CONFIGMAPS, namespace="n", resource_version="1", timeout_seconds=300
    ) as events:
        received = [event async for event in events]
    assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in received] == [
        ("ADDED", "1"),
        ("MODIFIED", "2"),
        ("ADDED", "3"),
        ("BOOKMARK", "9"),
    ]
    assert len(received[2]["object"]["data"]["blob"]) == 300_000
    (req,) = fake.requests
    assert req.path == "/api/v1/namespaces/n/configmaps"
    assert req.query == {
        "watch": "true",
        "resourceVersion": "1",
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "300",
    }


async def test_watch_start_failure_raises_api_error(
    api: tuple[FakeApi, TestServer], client: KubeClient
) -> None:
    fake, _ = api
    fake.reply(410, status_body(410, "Expired", "too old resource version: 1 (5)"))
    with pytest.raises(ApiError) as info:
        async with client.watch(CONFIGMAPS, resource_version="1"):
            pytest.fail("the body must not run")
    assert is_gone(info.value)


async def test_watch_abrupt_close_is_a_transport_error(
    api: tuple[FakeApi, TestServer], client: KubeClient
) -> None:
    fake, _ = api
    fake.script.append(stream_of(event_line("ADDED", "a", "1"), b'{"type":"ADD', abort=True))
    received: list[dict[str, Any]] = []
    with pytest.raises(TransportError):
        async with client.watch(CONFIGMAPS) as events:
            async for event in events:
                received.append(event)
    assert [e["object"]["metadata"]["name"] for e in received] == ["a"]


async def test_watch_abort_ends_iteration(
    api: tuple[FakeApi, TestServer], client: KubeClient
) -> None:
    fake, _ = api
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(event_line("ADDED", "a", "1"))
        await release.wait()
        return response

    fake.script.append(slow)
    async with client.watch(CONFIGMAPS) as events:
        first = await anext(aiter(events))
        events.abort()
        rest = [event async for event in events]
    release.set()
    assert first["type"] == "ADDED"
    assert rest == []
