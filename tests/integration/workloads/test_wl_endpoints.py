"""The simulated EndpointSlice and Endpoints controllers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wl_support import SimEnv, deployment, pod_ready, service, statefulset

Obj = dict[str, Any]


def _slices(env: SimEnv, name: str) -> list[Obj]:
    return env.client.list(
        "endpointslices.discovery.k8s.io",
        namespace="default",
        label_selector=f"kubernetes.io/service-name={name}",
    )


def _endpoints(env: SimEnv, name: str) -> list[Obj]:
    return [e for s in _slices(env, name) for e in s.get("endpoints") or ()]


def _ready_endpoints(env: SimEnv, name: str, count: int) -> Callable[[], list[Obj] | None]:
    def check() -> list[Obj] | None:
        found = [e for e in _endpoints(env, name) if e["conditions"]["ready"]]
        return found if len(found) == count else None

    return check


async def test_a_service_without_pods_has_one_placeholder_slice_that_is_reused(env: SimEnv) -> None:
    env.create("services", service("web", selector={"app": "web"}))
    (placeholder,) = await env.eventually(lambda: _slices(env, "web"))
    assert placeholder["endpoints"] is None
    assert placeholder["ports"] is None
    assert placeholder["addressType"] == "IPv4"
    assert placeholder["metadata"]["name"].startswith("web-")
    assert (
        "endpoints.kubernetes.io/last-change-trigger-time" in placeholder["metadata"]["annotations"]
    )
    empty = await env.eventually(lambda: env.get("endpoints", "web"))
    assert "subsets" not in empty

    env.create("deployments.apps", deployment("web", replicas=2, ports=[{"containerPort": 80}]))
    await env.eventually(_ready_endpoints(env, "web", 2))
    (filled,) = _slices(env, "web")
    assert filled["metadata"]["name"] == placeholder["metadata"]["name"]
    assert filled["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]


async def test_endpoints_carry_zone_and_follow_pods(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=4))
    env.create("services", service("web", selector={"app": "web"}))
    endpoints = await env.eventually(_ready_endpoints(env, "web", 4))
    zones = {"node-0": "zone-a", "node-1": "zone-a", "node-2": "zone-b", "node-3": "zone-b"}
    assert all(e["zone"] == zones[e["nodeName"]] for e in endpoints)

    env.workloads.nodes.relabel_node("node-3", {"topology.kubernetes.io/zone": "zone-c"})
    await env.eventually(
        lambda: (
            {e["zone"] for e in _endpoints(env, "web") if e["nodeName"] == "node-3"} == {"zone-c"}
        )
    )

    env.client.patch("deployments.apps", "web", {"spec": {"replicas": 1}}, namespace="default")
    (left,) = await env.eventually(
        lambda: found if len(found := _endpoints(env, "web")) == 1 else None
    )
    (pod,) = [p for p in env.pods("app=web") if not p["metadata"].get("deletionTimestamp")]
    assert left["targetRef"]["uid"] == pod["metadata"]["uid"]


async def test_not_ready_pods_are_listed_as_such(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=4))
    env.create("services", service("web", selector={"app": "web"}))
    await env.eventually(_ready_endpoints(env, "web", 4))
    env.workloads.nodes.set_node_ready("node-1", False)

    def split() -> tuple[list[Obj], list[Obj]] | None:
        found = env.get("endpoints", "web")
        subsets = (found or {}).get("subsets") or []
        ready = [a for s in subsets for a in s.get("addresses") or ()]
        waiting = [a for s in subsets for a in s.get("notReadyAddresses") or ()]
        return (ready, waiting) if len(waiting) == 1 else None

    ready, waiting = await env.eventually(split)
    assert [a["nodeName"] for a in waiting] == ["node-1"]
    assert len(ready) == 3
    (slice_endpoint,) = [e for e in _endpoints(env, "web") if e["nodeName"] == "node-1"]
    assert slice_endpoint["conditions"] == {"ready": False, "serving": False, "terminating": False}


async def test_publish_not_ready_addresses_lists_unready_pods_as_ready(env: SimEnv) -> None:
    svc = service("web", selector={"app": "web"})
    svc["spec"]["publishNotReadyAddresses"] = True
    env.create("deployments.apps", deployment("web", replicas=4))
    env.create("services", svc)
    await env.eventually(_ready_endpoints(env, "web", 4))
    env.workloads.nodes.set_node_ready("node-2", False)
    await env.eventually(
        lambda: (
            [
                e["conditions"]["serving"]
                for e in _endpoints(env, "web")
                if e["nodeName"] == "node-2"
            ]
            == [False]
        )
    )
    (endpoint,) = [e for e in _endpoints(env, "web") if e["nodeName"] == "node-2"]
    assert endpoint["conditions"]["ready"] is True
    found = env.get("endpoints", "web")
    assert found is not None
    assert all("notReadyAddresses" not in s for s in found["subsets"])


async def test_headless_statefulset_endpoints_carry_hostnames(env: SimEnv) -> None:
    env.create("services", service("db", selector={"app": "db"}, headless=True))
    env.create("statefulsets.apps", statefulset("db", replicas=2, service="db"))
    endpoints = await env.eventually(_ready_endpoints(env, "db", 2))
    assert sorted(e["hostname"] for e in endpoints) == ["db-0", "db-1"]
    (slice_,) = _slices(env, "db")
    assert slice_["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    found = env.get("endpoints", "db")
    assert found is not None
    assert found["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    addresses = found["subsets"][0]["addresses"]
    assert sorted(a["hostname"] for a in addresses) == ["db-0", "db-1"]


async def test_more_than_a_hundred_endpoints_span_several_slices(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=130))
    env.create("services", service("web", selector={"app": "web"}))
    await env.eventually(_ready_endpoints(env, "web", 130), timeout=30)
    sizes = sorted(len(s["endpoints"]) for s in _slices(env, "web"))
    assert sizes == [30, 100]
    addresses = [e["addresses"][0] for e in _endpoints(env, "web")]
    assert len(set(addresses)) == 130


async def test_named_ports_resolve_per_pod(env: SimEnv) -> None:
    env.create(
        "deployments.apps",
        deployment(
            "a",
            replicas=1,
            labels={"app": "a", "svc": "x"},
            ports=[{"name": "http", "containerPort": 8080}],
        ),
    )
    env.create(
        "deployments.apps",
        deployment(
            "b",
            replicas=1,
            labels={"app": "b", "svc": "x"},
            ports=[{"name": "http", "containerPort": 9090}],
        ),
    )
    env.create(
        "services",
        {
            "metadata": {"name": "x"},
            "spec": {
                "selector": {"svc": "x"},
                "ports": [{"name": "web", "port": 80, "targetPort": "http"}],
            },
        },
    )
    await env.eventually(_ready_endpoints(env, "x", 2))
    ports = sorted(s["ports"][0]["port"] for s in _slices(env, "x"))
    assert ports == [8080, 9090]
    found = env.get("endpoints", "x")
    assert found is not None
    assert sorted(s["ports"][0]["port"] for s in found["subsets"]) == [8080, 9090]


async def test_selector_changes_and_service_deletion(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("a", replicas=2))
    env.create("deployments.apps", deployment("b", replicas=1))
    env.create("services", service("web", selector={"app": "a"}))
    await env.eventually(_ready_endpoints(env, "web", 2))
    env.client.patch("services", "web", {"spec": {"selector": {"app": "b"}}}, namespace="default")
    (endpoint,) = await env.eventually(_ready_endpoints(env, "web", 1))
    assert endpoint["targetRef"]["name"].startswith("b-")

    env.client.delete("services", "web", namespace="default")
    await env.eventually(lambda: env.get("endpoints", "web") is None and not _slices(env, "web"))


async def test_services_without_a_selector_are_left_alone(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=1))
    env.create("services", {"metadata": {"name": "manual"}, "spec": {"ports": [{"port": 80}]}})
    env.create("services", service("web", selector={"app": "web"}))
    await env.eventually(_ready_endpoints(env, "web", 1))
    await env.workloads.settle()
    assert _slices(env, "manual") == []
    assert env.get("endpoints", "manual") is None


async def test_steady_state_writes_nothing(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=3))
    env.create("services", service("web", selector={"app": "web"}))
    await env.eventually(_ready_endpoints(env, "web", 3))
    await env.eventually(lambda: all(pod_ready(p) for p in env.pods("app=web")))
    await env.workloads.settle()
    version = env.sim.store.resource_version
    # Re-examining everything changes nothing when the world already matches.
    for controller in env.workloads.controllers:
        controller.resync()
    await env.workloads.settle()
    assert env.sim.store.resource_version == version
