"""Workload behaviour seen through the API only: kubesim and a real cluster, same assertions.

Each test runs against kubesim (workloads running) and, when SERVICEGROUP_E2E_KUBECONFIG is
set, against that cluster too. They label nodes with a key of their own, work in a fresh
namespace, and clean both up.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from wl_support import Cluster, condition, deployment, pod_ready, service, statefulset

Obj = dict[str, Any]

pytestmark = pytest.mark.timeout(600)


async def _available(cluster: Cluster, name: str, replicas: int) -> Obj:
    async def check() -> Obj | None:
        d = await cluster.get("deployments", name)
        if d is None:
            return None
        status = d.get("status") or {}
        available = condition(d, "Available")
        if (
            status.get("observedGeneration") == d["metadata"]["generation"]
            and status.get("readyReplicas") == replicas
            and status.get("availableReplicas") == replicas
            and status.get("updatedReplicas") == replicas
            and available is not None
            and available["status"] == "True"
        ):
            return d
        return None

    return await cluster.eventually(check)  # type: ignore[no-any-return]


async def test_deployment_with_node_selector_lands_only_on_matching_nodes(cluster: Cluster) -> None:
    matching = cluster.nodes[: max(1, len(cluster.nodes) // 2)]
    for node in matching:
        await cluster.label_node(node, "site-a")
    await cluster.create(
        "deployments", deployment("web", replicas=3, node_selector={cluster.label_key: "site-a"})
    )

    d = await _available(cluster, "web", 3)

    assert condition(d, "Available")["reason"] == "MinimumReplicasAvailable"  # type: ignore[index]
    progressing = condition(d, "Progressing")
    assert progressing is not None
    assert progressing["status"] == "True"
    assert progressing["reason"] == "NewReplicaSetAvailable"
    pods = await cluster.items("pods", selector="app=web")
    assert len(pods) == 3
    assert {p["spec"]["nodeName"] for p in pods} <= set(matching)
    assert all(pod_ready(p) and p["status"]["phase"] == "Running" for p in pods)
    replicasets = await cluster.items("replicasets", selector="app=web")
    assert len(replicasets) == 1
    rs = replicasets[0]
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    for pod in pods:
        assert pod["metadata"]["labels"]["pod-template-hash"] == pod_hash
        owner = pod["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "ReplicaSet",
            rs["metadata"]["uid"],
            True,
        )


async def test_relabelling_nodes_schedules_pending_pods_and_moves_nothing(cluster: Cluster) -> None:
    first = cluster.nodes[0]
    await cluster.label_node(first, "site-a")
    await cluster.create(
        "deployments",
        deployment("settled", replicas=2, node_selector={cluster.label_key: "site-a"}),
    )
    await cluster.create(
        "deployments",
        deployment("waiting", replicas=2, node_selector={cluster.label_key: "site-b"}),
    )
    await _available(cluster, "settled", 2)

    async def waiting_unschedulable() -> list[Obj] | None:
        pods = await cluster.items("pods", selector="app=waiting")
        if len(pods) != 2:
            return None
        for pod in pods:
            scheduled = condition(pod, "PodScheduled")
            if scheduled is None or scheduled.get("reason") != "Unschedulable":
                return None
        return pods

    pending = await cluster.eventually(waiting_unschedulable)
    assert all(not p["spec"].get("nodeName") for p in pending)
    assert all(p["status"]["phase"] == "Pending" for p in pending)
    assert all(condition(p, "PodScheduled")["status"] == "False" for p in pending)  # type: ignore[index]
    before = {
        p["metadata"]["uid"]: p["spec"]["nodeName"]
        for p in await cluster.items("pods", selector="app=settled")
    }

    # The node leaves site-a for site-b: required-during-scheduling, ignored-during-execution.
    await cluster.label_node(first, "site-b")

    async def waiting_ready() -> list[Obj] | None:
        pods = await cluster.items("pods", selector="app=waiting")
        return pods if len(pods) == 2 and all(pod_ready(p) for p in pods) else None

    placed = await cluster.eventually(waiting_ready)
    assert {p["spec"]["nodeName"] for p in placed} == {first}
    assert {p["metadata"]["uid"] for p in placed} == {p["metadata"]["uid"] for p in pending}
    after = await cluster.items("pods", selector="app=settled")
    assert {p["metadata"]["uid"]: p["spec"]["nodeName"] for p in after} == before
    assert all(pod_ready(p) for p in after)


async def test_statefulset_creates_ordered_pods_with_stable_names(cluster: Cluster) -> None:
    await cluster.create("services", service("db", selector={"app": "db"}, headless=True))
    events: list[tuple[str, str, bool]] = []
    started = asyncio.Event()

    async def record() -> None:
        async for event in cluster.watch("pods", selector="app=db", opened=started):
            pod = event["object"]
            events.append((event["type"], pod["metadata"]["name"], pod_ready(pod)))

    async with asyncio.TaskGroup() as tasks:
        watcher = tasks.create_task(record(), name="wl-test-watch-db-pods")
        await started.wait()
        await cluster.create("statefulsets", statefulset("db", replicas=3, service="db"))

        async def all_ready() -> Obj | None:
            sts = await cluster.get("statefulsets", "db")
            status = (sts or {}).get("status") or {}
            return sts if status.get("readyReplicas") == 3 else None

        sts = await cluster.eventually(all_ready)
        status = sts["status"]
        assert status["replicas"] == 3
        assert status["currentReplicas"] == 3
        assert status["updatedReplicas"] == 3
        assert status["availableReplicas"] == 3
        assert status["observedGeneration"] == sts["metadata"]["generation"]
        assert status["currentRevision"] == status["updateRevision"]
        revision = await cluster.get("controllerrevisions", status["updateRevision"])
        assert revision is not None
        assert revision["metadata"]["ownerReferences"][0]["uid"] == sts["metadata"]["uid"]

        pods = {p["metadata"]["name"]: p for p in await cluster.items("pods", selector="app=db")}
        assert sorted(pods) == ["db-0", "db-1", "db-2"]
        for index, name in enumerate(sorted(pods)):
            pod = pods[name]
            labels = pod["metadata"]["labels"]
            assert labels["statefulset.kubernetes.io/pod-name"] == name
            assert labels["apps.kubernetes.io/pod-index"] == str(index)
            assert labels["controller-revision-hash"] == status["updateRevision"]
            assert pod["spec"]["hostname"] == name
            assert pod["spec"]["subdomain"] == "db"

        # OrderedReady: each pod is created only after the previous one is Ready.
        await cluster.patch("statefulsets", "db", {"spec": {"replicas": 1}})

        async def scaled_down() -> bool:
            names = [p["metadata"]["name"] for p in await cluster.items("pods", selector="app=db")]
            return names == ["db-0"]

        await cluster.eventually(scaled_down)
        # Let the watch deliver the last DELETED event before it is stopped.
        await cluster.eventually(lambda: sum(1 for kind, _, _ in events if kind == "DELETED") >= 2)
        watcher.cancel()

    added = [name for kind, name, _ in events if kind == "ADDED"]
    assert added == ["db-0", "db-1", "db-2"]
    ready_seen: set[str] = set()
    for kind, name, ready in events:
        if kind == "ADDED" and name != "db-0":
            previous = f"db-{int(name.rsplit('-', 1)[1]) - 1}"
            assert previous in ready_seen, f"{name} was created before {previous} was Ready"
        if ready:
            ready_seen.add(name)
    deleted = [name for kind, name, _ in events if kind == "DELETED"]
    assert deleted == ["db-2", "db-1"]


async def test_endpointslice_lists_exactly_the_ready_pods_with_their_nodes(
    cluster: Cluster,
) -> None:
    await cluster.create(
        "deployments",
        deployment("api", replicas=3, ports=[{"name": "http", "containerPort": 8080}]),
    )
    await cluster.create(
        "services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "api", "labels": {"tier": "backend"}},
            "spec": {
                "selector": {"app": "api"},
                "ports": [{"name": "web", "port": 80, "targetPort": "http"}],
            },
        },
    )
    await _available(cluster, "api", 3)

    async def slices_match() -> tuple[list[Obj], list[Obj]] | None:
        pods = [p for p in await cluster.items("pods", selector="app=api") if pod_ready(p)]
        slices = await cluster.items("endpointslices", selector="kubernetes.io/service-name=api")
        ready = [
            e for s in slices for e in s.get("endpoints") or () if e["conditions"].get("ready")
        ]
        if len(pods) == 3 and len(ready) == 3:
            return pods, slices
        return None

    pods, slices = await cluster.eventually(slices_match)
    by_name = {p["metadata"]["name"]: p for p in pods}
    endpoints = [e for s in slices for e in s.get("endpoints") or ()]
    assert len(endpoints) == 3
    for endpoint in endpoints:
        pod = by_name[endpoint["targetRef"]["name"]]
        assert endpoint["addresses"] == [pod["status"]["podIP"]]
        assert endpoint["nodeName"] == pod["spec"]["nodeName"]
        assert endpoint["targetRef"]["kind"] == "Pod"
        assert endpoint["targetRef"]["uid"] == pod["metadata"]["uid"]
        assert endpoint["conditions"] == {"ready": True, "serving": True, "terminating": False}
    for slice_ in slices:
        labels = slice_["metadata"]["labels"]
        assert labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
        assert labels["tier"] == "backend"
        assert slice_["addressType"] == "IPv4"
        assert slice_["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
        owner = slice_["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("Service", "api", True)

    async def endpoints_match() -> Obj | None:
        found = await cluster.get("endpoints", "api")
        subsets = (found or {}).get("subsets") or []
        addresses = [a for s in subsets for a in s.get("addresses") or ()]
        return found if len(addresses) == 3 else None

    core = await cluster.eventually(endpoints_match)
    (subset,) = core["subsets"]
    assert sorted(a["ip"] for a in subset["addresses"]) == sorted(
        p["status"]["podIP"] for p in pods
    )
    assert {a["targetRef"]["name"]: a["nodeName"] for a in subset["addresses"]} == {
        n: p["spec"]["nodeName"] for n, p in by_name.items()
    }
    assert subset["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]


async def test_deleting_a_deployment_collects_its_replicasets_and_pods(cluster: Cluster) -> None:
    await cluster.create("deployments", deployment("gone", replicas=2))
    d = await _available(cluster, "gone", 2)
    uid = d["metadata"]["uid"]
    assert len(await cluster.items("replicasets", selector="app=gone")) == 1

    await cluster.delete("deployments", "gone")

    async def collected() -> bool:
        replicasets = await cluster.items("replicasets", selector="app=gone")
        pods = await cluster.items("pods", selector="app=gone")
        return not replicasets and not pods

    await cluster.eventually(collected)
    assert await cluster.get("deployments", "gone") is None
    # Nothing the old Deployment owned (through its ReplicaSets) may linger in the namespace.
    owned = [
        rs
        for rs in await cluster.items("replicasets")
        if any(r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or ())
    ]
    assert owned == []
    assert await cluster.items("pods") == []
