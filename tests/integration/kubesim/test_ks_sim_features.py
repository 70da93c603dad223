"""kubesim-only features: request accounting, fault injection, in-process client, discovery."""

from __future__ import annotations

import asyncio

import pytest
from ks_support import USER_AGENT, Cluster, api_client_for, wait_for
from kubernetes_asyncio import client

from servicegroup.kubesim.errors import ApiError

pytestmark = pytest.mark.asyncio


async def test_request_accounting_counts_and_resets(cluster: Cluster) -> None:
    sim = cluster.require_sim()
    status, _, _ = await cluster.raw("DELETE", "/kubesim/requests")
    assert status == 200
    ns = cluster.namespace
    await cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": "acc"}})
    await cluster.core.read_namespaced_config_map("acc", ns)
    await cluster.apps.list_namespaced_deployment(ns)
    await cluster.core.patch_namespaced_config_map("acc", ns, {"data": {"a": "b"}})
    product = USER_AGENT.split("/")[0]
    assert sim.requests.count(verb="create", resource="configmaps") == 1
    assert sim.requests.count(verb="get", resource="configmaps") == 1
    assert sim.requests.count(verb="list", resource="deployments.apps") == 1
    assert sim.requests.writes(user_agent_product=product) == 2
    status, body, _ = await cluster.raw("GET", "/kubesim/requests")
    assert status == 200
    entries = {(e["verb"], e["resource"], e["userAgent"]): e["count"] for e in body["requests"]}
    assert entries[("patch", "configmaps", product)] == 1
    await cluster.raw("DELETE", "/kubesim/requests")
    assert sim.requests.writes() == 0


async def test_request_accounting_tells_components_apart(cluster: Cluster) -> None:
    sim = cluster.require_sim()
    await cluster.raw("DELETE", "/kubesim/requests")
    ns = cluster.namespace
    for component in ("controller", "wrapper"):
        api = api_client_for(cluster.url)
        api.user_agent = f"servicegroup/0.1.0 ({component})"
        try:
            core = client.CoreV1Api(api)
            await core.create_namespaced_config_map(ns, {"metadata": {"name": component}})
            await core.list_namespaced_config_map(ns)
        finally:
            await api.close()
    assert sim.requests.writes(user_agent_product="servicegroup") == 2
    assert sim.requests.writes(user_agent_component="controller") == 1
    assert (
        sim.requests.count(
            verb="list", user_agent_product="servicegroup", user_agent_component="wrapper"
        )
        == 1
    )
    status, body, _ = await cluster.raw("GET", "/kubesim/requests")
    assert status == 200
    rows = {
        (e["verb"], e["userAgent"], e["userAgentComponent"]): e["count"] for e in body["requests"]
    }
    assert rows[("create", "servicegroup", "controller")] == 1
    assert rows[("create", "servicegroup", "wrapper")] == 1


async def test_fault_injection_fails_the_next_requests(cluster: Cluster) -> None:
    sim = cluster.require_sim()
    ns = cluster.namespace
    status, _, _ = await cluster.raw(
        "POST",
        "/kubesim/faults",
        body={
            "fail": {
                "verbs": ["create"],
                "resources": ["configmaps"],
                "code": 429,
                "count": 2,
                "retryAfter": 3,
            }
        },
    )
    assert status == 200
    path = f"/api/v1/namespaces/{ns}/configmaps"
    for _ in range(2):
        status, body, headers = await cluster.raw("POST", path, body={"metadata": {"name": "f"}})
        assert status == 429
        assert body["reason"] == "TooManyRequests"
        assert headers["Retry-After"] == "3"
    status, _, _ = await cluster.raw("POST", path, body={"metadata": {"name": "f"}})
    assert status == 201
    # A fraction rule is deterministic for a seed.
    sim.faults.fail(code=500, verbs=["get"], resources=["configmaps"], fraction=0.5)
    outcomes = []
    for _ in range(20):
        status, _, _ = await cluster.raw("GET", f"{path}/f")
        outcomes.append(status)
    assert set(outcomes) == {200, 500}
    await cluster.raw("POST", "/kubesim/faults", body={"clear": True})
    status, _, _ = await cluster.raw("GET", f"{path}/f")
    assert status == 200
    status, body, _ = await cluster.raw("POST", "/kubesim/faults", body={"nonsense": 1})
    assert status == 400


async def test_close_watches_fault_ends_open_watches(cluster: Cluster) -> None:
    sim = cluster.require_sim()
    response = await cluster.api.call_api(
        f"/api/v1/namespaces/{cluster.namespace}/configmaps",
        "GET",
        query_params=[("watch", "true"), ("timeoutSeconds", 30)],
        header_params={"Accept": "application/json"},
        _preload_content=False,
        auth_settings=["BearerToken"],
    )
    try:
        await wait_for(lambda: sim.store.watcher_count() > 0)
        status, body, _ = await cluster.raw("POST", "/kubesim/faults", body={"closeWatches": True})
        assert status == 200
        assert body["closedWatches"] >= 1
        async with asyncio.timeout(5):
            rest = await response.content.read()
        assert rest == b""  # the stream ended without further events
    finally:
        response.release()


async def test_latency_fault_delays_requests(cluster: Cluster) -> None:
    sim = cluster.require_sim()
    sim.faults.add_latency(seconds=0.2, verbs=["list"], resources=["secrets"])
    loop = asyncio.get_running_loop()
    started = loop.time()
    await cluster.core.list_namespaced_secret(cluster.namespace)
    # A lower bound only: the request waited at least the injected latency.
    assert loop.time() - started >= 0.2
    sim.faults.clear()


async def test_in_process_client_uses_the_same_semantics(cluster: Cluster) -> None:
    sim = cluster.require_sim()
    ns = cluster.namespace
    local = sim.client(manager="kubesim-test")
    with local.subscribe("configmaps") as events:
        created = local.create(
            "configmaps", {"metadata": {"name": "loc", "namespace": ns}, "data": {"a": "0"}}
        )
        assert created["metadata"]["managedFields"][0]["manager"] == "kubesim-test"
        created["data"] = {"a": "1"}
        updated = local.update("configmaps", created)
        assert int(updated["metadata"]["resourceVersion"]) > int(
            created["metadata"]["resourceVersion"]
        )
        with pytest.raises(ApiError) as err:
            local.create("configmaps", {"metadata": {"name": "loc", "namespace": ns}})
        assert err.value.code == 409
        seen = []
        async with asyncio.timeout(5):
            async for event in events:
                seen.append((event.type, event.obj["metadata"]["name"]))
                if len(seen) == 2:
                    break
        assert seen == [("ADDED", "loc"), ("MODIFIED", "loc")]
    # REST sees what the in-process client wrote.
    got = await cluster.core.read_namespaced_config_map("loc", ns)
    assert got.data == {"a": "1"}


async def test_aggregated_discovery_negotiation(cluster: Cluster) -> None:
    accept = (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
        "application/json"
    )
    status, body, headers = await cluster.raw("GET", "/apis", accept=accept)
    assert status == 200
    assert "as=APIGroupDiscoveryList" in headers["Content-Type"]
    assert body["kind"] == "APIGroupDiscoveryList"
    apps = next(item for item in body["items"] if item["metadata"]["name"] == "apps")
    deployments = next(
        r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments"
    )
    assert deployments["scope"] == "Namespaced"
    assert "deploy" in deployments["shortNames"]
    status, body, headers = await cluster.raw("GET", "/apis", accept="application/json")
    assert body["kind"] == "APIGroupList"
    status, body, _ = await cluster.raw("GET", "/api", accept=accept)
    assert body["items"][0]["metadata"]["name"] == ""
    version = await client.VersionApi(cluster.api).get_code()
    assert version.major == "1"
