"""Probe and metrics endpoints, over real HTTP on 127.0.0.1 with OS-chosen ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import structlog

from servicegroup.metrics import Metrics
from servicegroup.probes import HealthChecks, ProbeServer

LOCAL = "127.0.0.1:0"


def _server(metrics: Metrics, *, health: str = LOCAL, metrics_addr: str = LOCAL) -> ProbeServer:
    return ProbeServer(
        health_bind_address=health,
        metrics_bind_address=metrics_addr,
        registry=metrics.registry,
        logger=structlog.get_logger(),
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _get(
    http: aiohttp.ClientSession, port: int | None, path: str, **headers: str
) -> tuple[int, str, aiohttp.ClientResponse]:
    assert port is not None
    async with http.get(f"http://127.0.0.1:{port}{path}", headers=headers) as response:
        return response.status, await response.text(), response


class Flag:
    def __init__(self, value: bool) -> None:
        self.value = value

    def __call__(self) -> bool:
        return self.value


def _raises() -> bool:
    raise RuntimeError("secret detail")


async def test_healthz_all_passing(metrics: Metrics, http: aiohttp.ClientSession) -> None:
    server = _server(metrics)
    server.add_healthz_check("ping", lambda: True)
    server.add_healthz_check("leader-election", lambda: True)
    async with server:
        status, body, response = await _get(http, server.health_port, "/healthz")
        assert (status, body) == (200, "ok")
        assert response.headers["Content-Type"].startswith("text/plain")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        status, body, _ = await _get(http, server.health_port, "/healthz?verbose")
        assert status == 200
        assert body == "[+]ping ok\n[+]leader-election ok\nhealthz check passed\n"
        status, body, _ = await _get(http, server.health_port, "/livez")
        assert (status, body) == (200, "ok")


async def test_healthz_failing_check_lists_every_check(
    metrics: Metrics, http: aiohttp.ClientSession
) -> None:
    server = _server(metrics)
    leader = Flag(False)
    server.add_healthz_check("ping", lambda: True)
    server.add_healthz_check("leader-election", leader)
    server.add_healthz_check("crashy", _raises)
    async with server:
        status, body, _ = await _get(http, server.health_port, "/healthz")
        assert status == 500
        assert body.splitlines() == [
            "[+]ping ok",
            "[-]leader-election failed: reason withheld",
            "[-]crashy failed: reason withheld",
            "healthz check failed",
        ]
        assert "secret detail" not in body  # reasons are logged, not served
        status, body, _ = await _get(http, server.health_port, "/healthz?exclude=crashy")
        assert status == 500 and "[+]crashy excluded: ok" in body
        leader.value = True
        status, body, _ = await _get(http, server.health_port, "/healthz?exclude=crashy")
        assert (status, body) == (200, "ok")


async def test_readyz_follows_its_checks(metrics: Metrics, http: aiohttp.ClientSession) -> None:
    server = _server(metrics)
    synced = Flag(False)
    server.add_readyz_check("ping", lambda: True)
    server.add_readyz_check("informers-synced", synced)
    async with server:
        status, body, _ = await _get(http, server.health_port, "/readyz?verbose")
        assert status == 500
        assert body.endswith("[-]informers-synced failed: reason withheld\nreadyz check failed\n")
        synced.value = True
        status, body, _ = await _get(http, server.health_port, "/readyz")
        assert (status, body) == (200, "ok")
        status, body, _ = await _get(http, server.health_port, "/readyz?verbose")
        assert body == "[+]ping ok\n[+]informers-synced ok\nreadyz check passed\n"
        # healthz and readyz checks are separate sets
        status, body, _ = await _get(http, server.health_port, "/healthz?verbose")
        assert (status, body) == (200, "healthz check passed\n")


async def test_single_check_path(metrics: Metrics, http: aiohttp.ClientSession) -> None:
    server = _server(metrics)
    synced = Flag(False)
    server.add_readyz_check("ping", lambda: True)
    server.add_readyz_check("informers-synced", synced)
    async with server:
        port = server.health_port
        assert (await _get(http, port, "/readyz/ping"))[:2] == (200, "ok")
        status, body, _ = await _get(http, port, "/readyz/informers-synced")
        assert status == 500 and "informers-synced failed" in body
        assert (await _get(http, port, "/readyz/nope"))[0] == 404
        synced.value = True
        assert (await _get(http, port, "/readyz/informers-synced"))[:2] == (200, "ok")


async def test_metrics_exposition(metrics: Metrics, http: aiohttp.ClientSession) -> None:
    metrics.workqueue_depth.labels(name="deploymentgrid", controller="deploymentgrid").set(3)
    metrics.workqueue_adds.labels(name="deploymentgrid", controller="deploymentgrid").inc()
    server = _server(metrics)
    async with server:
        status, body, response = await _get(http, server.metrics_port, "/metrics")
        assert status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        assert 'workqueue_depth{controller="deploymentgrid",name="deploymentgrid"} 3.0' in body
        assert "workqueue_adds_total{" in body
        assert "_created" not in body
        status, body, response = await _get(
            http,
            server.metrics_port,
            "/metrics",
            Accept="application/openmetrics-text; version=1.0.0",
        )
        assert status == 200
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert "workqueue_depth{" in body
        assert body.rstrip().endswith("# EOF")
        assert "_created" not in body


async def test_separate_listeners_serve_only_their_paths(
    metrics: Metrics, http: aiohttp.ClientSession
) -> None:
    server = _server(metrics)
    server.add_healthz_check("ping", lambda: True)
    async with server:
        assert server.health_port != server.metrics_port
        assert (await _get(http, server.health_port, "/metrics"))[0] == 404
        assert (await _get(http, server.metrics_port, "/healthz"))[0] == 404
        assert (await _get(http, server.metrics_port, "/metrics"))[0] == 200


async def test_equal_addresses_share_one_listener(
    metrics: Metrics, http: aiohttp.ClientSession
) -> None:
    async with _server(metrics) as probe:
        taken = probe.health_port
    # Reuse a concrete free port for both addresses.
    address = f"127.0.0.1:{taken}"
    server = _server(metrics, health=address, metrics_addr=address)
    server.add_healthz_check("ping", lambda: True)
    async with server:
        assert server.health_port == server.metrics_port == taken
        assert (await _get(http, taken, "/healthz"))[:2] == (200, "ok")
        assert (await _get(http, taken, "/metrics"))[0] == 200


async def test_disabled_addresses(metrics: Metrics, http: aiohttp.ClientSession) -> None:
    server = _server(metrics, health="0", metrics_addr="0")
    async with server:
        assert server.health_port is None and server.metrics_port is None
    only_metrics = _server(metrics, health="0")
    async with only_metrics:
        assert only_metrics.health_port is None
        assert (await _get(http, only_metrics.metrics_port, "/metrics"))[0] == 200


async def test_stop_closes_the_port(metrics: Metrics, http: aiohttp.ClientSession) -> None:
    server = _server(metrics)
    server.add_healthz_check("ping", lambda: True)
    async with server:
        port = server.health_port
    with pytest.raises(aiohttp.ClientConnectionError):
        await _get(http, port, "/healthz")


async def test_run_in_a_task_group(metrics: Metrics, http: aiohttp.ClientSession) -> None:
    server = _server(metrics, metrics_addr="0")
    server.add_healthz_check("ping", lambda: True)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(server.run(), name="probes")
        for _ in range(200):
            if server.health_port is not None:
                break
            await asyncio.sleep(0.01)
        assert (await _get(http, server.health_port, "/healthz"))[:2] == (200, "ok")
        task.cancel()
    assert server.health_port is None


def test_check_names_are_validated() -> None:
    checks = HealthChecks(kind="healthz", logger=structlog.get_logger())
    checks.add("ping", lambda: True)
    with pytest.raises(ValueError, match="already registered"):
        checks.add("ping", lambda: True)
    for bad in ("", "a/b", " x"):
        with pytest.raises(ValueError, match="invalid"):
            checks.add(bad, lambda: True)


def test_passing_evaluates_every_check() -> None:
    checks = HealthChecks(kind="readyz", logger=structlog.get_logger())
    flag = Flag(True)
    checks.add("a", lambda: True)
    checks.add("b", flag)
    assert checks.passing()
    flag.value = False
    assert not checks.passing()
    assert [r.ok for r in checks.run_all()] == [True, False]


def test_failures_are_logged_on_change_only() -> None:
    flag = Flag(False)
    with structlog.testing.capture_logs() as logs:
        checks = HealthChecks(kind="readyz", logger=structlog.get_logger())
        checks.add("informers-synced", flag)
        for _ in range(3):
            assert not checks.passing()
        flag.value = True
        assert checks.passing() and checks.passing()
    events = [entry["event"] for entry in logs]
    assert events == ["readyz check failed", "readyz check passing again"]
