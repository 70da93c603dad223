"""Fixtures of the workload simulation tests.

- `cluster`: parametrized over kubesim (an in-process KubeSim on a free port with its
  workloads running, four nodes) and, when SERVICEGROUP_E2E_KUBECONFIG is set, the real
  cluster it points at (skipped when that cluster has no schedulable node). Each test gets
  a fresh namespace and a node label key of its own; both are cleaned up afterwards.
- `env`: an in-process kubesim with workloads for kubesim-only tests; `wl_options`,
  `wl_nodes` and `wl_clock` shape it (override them in a test module or parametrize them).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client, config
from wl_support import (
    E2E_KUBECONFIG,
    USER_AGENT,
    Cluster,
    SimEnv,
    fresh_label_key,
    schedulable_nodes,
)

from servicegroup.clock import FakeClock
from servicegroup.kubesim.app import KubeSim
from servicegroup.kubesim.workloads import NodeSpec, WorkloadOptions, Workloads

SIM_NODES = [
    NodeSpec("node-0", {"topology.kubernetes.io/zone": "zone-a"}),
    NodeSpec("node-1", {"topology.kubernetes.io/zone": "zone-a"}),
    NodeSpec("node-2", {"topology.kubernetes.io/zone": "zone-b"}),
    NodeSpec("node-3", {"topology.kubernetes.io/zone": "zone-b"}),
]


async def _sim_cluster() -> AsyncIterator[Cluster]:
    sim = KubeSim()
    await sim.start()
    try:
        workloads = Workloads(
            engine=sim.engine,
            options=WorkloadOptions(pod_start_delay=0.05, termination_grace=0.1),
        )
        for spec in SIM_NODES:
            workloads.nodes.add_node(spec)
        sim.start_task(workloads.run(), name="kubesim-workloads")
        api = client.ApiClient(client.Configuration(host=sim.url))
        api.user_agent = USER_AGENT
        try:
            cluster = Cluster(
                api=api,
                namespace=f"wl-{secrets.token_hex(4)}",
                nodes=[s.name for s in SIM_NODES],
                label_key=fresh_label_key(),
                sim=sim,
                workloads=workloads,
                timeout=15.0,
            )
            await cluster.call(
                "POST", "/api/v1/namespaces", body={"metadata": {"name": cluster.namespace}}
            )
            yield cluster
        finally:
            await api.close()
    finally:
        await sim.stop()


async def _real_cluster() -> AsyncIterator[Cluster]:
    assert E2E_KUBECONFIG
    configuration = client.Configuration()
    await config.load_kube_config(config_file=E2E_KUBECONFIG, client_configuration=configuration)
    api = client.ApiClient(configuration)
    api.user_agent = USER_AGENT
    try:
        probe = Cluster(api=api, namespace="default", nodes=[], label_key="")
        nodes = schedulable_nodes((await probe.call("GET", "/api/v1/nodes"))["items"])
        if not nodes:
            pytest.skip("the e2e cluster has no schedulable node")
        cluster = Cluster(
            api=api,
            namespace=f"wl-{secrets.token_hex(4)}",
            nodes=nodes,
            label_key=fresh_label_key(),
            timeout=180.0,
        )
        await cluster.call(
            "POST", "/api/v1/namespaces", body={"metadata": {"name": cluster.namespace}}
        )
        try:
            yield cluster
        finally:
            await cluster.cleanup()
    finally:
        await api.close()


@pytest.fixture(params=["kubesim", pytest.param("e2e", marks=pytest.mark.e2e)])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    if request.param == "e2e":
        if not E2E_KUBECONFIG:
            pytest.skip("SERVICEGROUP_E2E_KUBECONFIG is not set")
        async for found in _real_cluster():
            yield found
    else:
        async for found in _sim_cluster():
            yield found


@pytest.fixture
def wl_options() -> WorkloadOptions:
    return WorkloadOptions(pod_start_delay=0.0, termination_grace=0.0)


@pytest.fixture
def wl_nodes() -> list[NodeSpec]:
    return list(SIM_NODES)


@pytest.fixture
def wl_clock() -> FakeClock | None:
    return None


@pytest.fixture
async def env(
    wl_options: WorkloadOptions, wl_nodes: list[NodeSpec], wl_clock: FakeClock | None
) -> AsyncIterator[SimEnv]:
    sim = KubeSim(clock=wl_clock, gc_dangling_delay=0.02)
    await sim.start()
    try:
        workloads = Workloads(engine=sim.engine, options=wl_options)
        for spec in wl_nodes:
            workloads.nodes.add_node(spec)
        sim.start_task(workloads.run(), name="kubesim-workloads")
        yield SimEnv(sim=sim, workloads=workloads, client=sim.client(manager="kubectl"))
    finally:
        await sim.stop()
