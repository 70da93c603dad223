"""The Workloads runner: API-only mode, switches, late start and restart, clean shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from wl_support import SimEnv, deployment, eventually, pod_ready, service

from servicegroup.kubesim.app import KubeSim
from servicegroup.kubesim.workloads import WorkloadOptions, Workloads


@pytest.fixture
async def bare() -> AsyncIterator[KubeSim]:
    async with KubeSim() as sim:
        yield sim


async def _stop(task: asyncio.Task[object]) -> None:
    task.cancel()
    await asyncio.wait([task])


async def test_api_only_mode_runs_nothing(bare: KubeSim) -> None:
    nodes = Workloads(engine=bare.engine).nodes
    nodes.add_node("node-0")
    client = bare.client(manager="kubectl")
    client.create("deployments.apps", deployment("web", replicas=2), namespace="default")
    client.create(
        "pods",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "pause"}]}},
        namespace="default",
    )
    await bare.settle()
    assert client.list("replicasets.apps", namespace="default") == []
    pod = client.get("pods", "p", namespace="default")
    assert "nodeName" not in pod["spec"]
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


async def test_workloads_started_late_converge_on_what_exists(bare: KubeSim) -> None:
    workloads = Workloads(engine=bare.engine, options=WorkloadOptions(pod_start_delay=0))
    workloads.nodes.add_nodes(["node-0", "node-1"])
    client = bare.client(manager="kubectl")
    client.create("deployments.apps", deployment("web", replicas=3), namespace="default")
    client.create("services", service("web", selector={"app": "web"}), namespace="default")

    task = bare.start_task(workloads.run(), name="kubesim-workloads")
    try:
        await eventually(
            lambda: len([p for p in client.list("pods", namespace="default") if pod_ready(p)]) == 3
        )
        first_ips = {p["status"]["podIP"] for p in client.list("pods", namespace="default")}
    finally:
        await _stop(task)
    assert workloads.running is False
    assert workloads._on_event not in bare.store._listeners

    # A fresh runner on the same store keeps the addresses in use and hands out new ones.
    again = Workloads(engine=bare.engine, options=WorkloadOptions(pod_start_delay=0))
    task = bare.start_task(again.run(), name="kubesim-workloads-2")
    try:
        client.patch("deployments.apps", "web", {"spec": {"replicas": 6}}, namespace="default")
        await eventually(
            lambda: len([p for p in client.list("pods", namespace="default") if pod_ready(p)]) == 6
        )
        addresses = [p["status"]["podIP"] for p in client.list("pods", namespace="default")]
        assert len(set(addresses)) == 6
        assert first_ips <= set(addresses)
    finally:
        await _stop(task)


@pytest.mark.parametrize(
    "wl_options", [WorkloadOptions(pod_start_delay=0, endpointslices=False, statefulsets=False)]
)
async def test_switched_off_controllers_do_nothing(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=1))
    env.create("services", service("web", selector={"app": "web"}))
    await env.eventually(lambda: (env.get("endpoints", "web") or {}).get("subsets"))
    await env.workloads.settle()
    assert env.client.list("endpointslices.discovery.k8s.io", namespace="default") == []
    names = [c.name for c in env.workloads.controllers]
    assert "endpointslice-controller" not in names
    assert "statefulset-controller" not in names


async def test_everything_switched_off_is_api_only(bare: KubeSim) -> None:
    workloads = Workloads(engine=bare.engine, options=WorkloadOptions.none())
    assert workloads.controllers == []
    task = bare.start_task(workloads.run(), name="kubesim-workloads")
    try:
        workloads.nodes.add_node("node-0")
        client = bare.client(manager="kubectl")
        client.create("deployments.apps", deployment("web", replicas=1), namespace="default")
        await bare.settle()
        await workloads.settle()
        assert client.list("replicasets.apps", namespace="default") == []
    finally:
        await _stop(task)


async def test_writers_use_the_components_field_managers(env: SimEnv) -> None:
    env.create("deployments.apps", deployment("web", replicas=1))
    await env.eventually(lambda: any(pod_ready(p) for p in env.pods("app=web")))
    (pod,) = env.pods("app=web")
    managers = {
        (e["manager"], e["operation"], e.get("subresource"))
        for e in pod["metadata"]["managedFields"]
    }
    assert ("kube-controller-manager", "Update", None) in managers
    assert ("kubelet", "Update", "status") in managers
    (rs,) = env.client.list("replicasets.apps", namespace="default")
    rs_managers = {(e["manager"], e.get("subresource")) for e in rs["metadata"]["managedFields"]}
    assert ("kube-controller-manager", None) in rs_managers
    assert ("kube-controller-manager", "status") in rs_managers
