"""The upstream ServiceGrid example end to end on kubesim with workloads: the controller,
then one wrapper per NodeUnit, each seen through a kube-proxy-like watch client.

The upstream DeploymentGrid and ServiceGrid are created unchanged; the real controller
(in-process, as tests/integration/controller runs it: ctl_scenarios.cluster) creates their
children, a Deployment per NodeUnit and the Service `servicegrid-demo-svc`; pods, their IPs
and the EndpointSlices come from kubesim's workload simulation (scheduler, kubelets,
EndpointSlice controller).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ctl_scenarios.cluster import RunningController, controller_settings, launch_controller
from wrap_support import UNITS, ProxyClient, eventually, running_wrapper

from servicegroup.api.crds import crd_manifests
from servicegroup.kube.config import ClientConfig
from servicegroup.kubesim.app import KubeSim
from servicegroup.kubesim.errors import ApiError as SimApiError
from servicegroup.kubesim.local import LocalClient
from servicegroup.kubesim.workloads import Workloads

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "upstream"
WRAPPED_NODES = {"zone-1": "edge-1a", "zone-2": "edge-2a", "zone-3": "edge-3a"}
SVC = "servicegrid-demo-svc"


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((FIXTURES / name).read_text())
    return loaded


def pod_ips_by_unit(api: LocalClient, units: dict[str, str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for pod in api.list("pods", namespace="default"):
        ip = (pod.get("status") or {}).get("podIP")
        node = (pod.get("spec") or {}).get("nodeName")
        if ip and node:
            out.setdefault(units[node], set()).add(ip)
    return out


@contextlib.asynccontextmanager
async def workloads(sim: KubeSim) -> AsyncIterator[Workloads]:
    sim_workloads = Workloads(engine=sim.engine)
    task = sim.start_task(sim_workloads.run(), name="kubesim-workloads")
    try:
        yield sim_workloads
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def controller(sim: KubeSim) -> AsyncIterator[RunningController]:
    """`servicegroup controller` in-process against `sim`, stopped on exit."""
    running = launch_controller(
        controller_settings(), config=ClientConfig.for_server(sim.url), identity="wrapper-test"
    )
    try:
        yield running
    finally:
        await running.stop()


def get(api: LocalClient, resource: str, name: str) -> dict[str, Any] | None:
    try:
        return api.get(resource, name, namespace="default")
    except SimApiError as err:
        if err.code == 404:
            return None
        raise


def controlled_by(obj: dict[str, Any] | None, grid: dict[str, Any]) -> bool:
    """`obj` exists, its controller is `grid`, and the controller's field manager wrote it."""
    if obj is None:
        return False
    metadata = obj["metadata"]
    owners = [r for r in metadata.get("ownerReferences") or () if r.get("controller")]
    managers = {m["manager"] for m in metadata.get("managedFields") or ()}
    return [r["uid"] for r in owners] == [grid["metadata"]["uid"]] and (
        "servicegroup-controller" in managers
    )


async def deploy_upstream_example(sim: KubeSim) -> tuple[LocalClient, dict[str, Any]]:
    """CRDs, the upstream grids (unchanged) and a plain Service over the same pods."""
    api = sim.client(manager="test")
    for crd in crd_manifests():
        api.create("customresourcedefinitions", crd)
    await sim.settle()
    grids = {
        "deploymentgrid": api.create("deploymentgrids", load("deploymentgrid-demo.yaml")),
        "servicegrid": api.create("servicegrids", load("servicegrid-demo.yaml")),
    }
    # An ordinary Service over the same pods: its endpoints must pass through untouched.
    api.create(
        "services",
        {
            "metadata": {"name": "echo-all", "namespace": "default"},
            "spec": {"selector": {"appGrid": "echo"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    return api, grids


async def children_created(api: LocalClient, grids: dict[str, dict[str, Any]]) -> None:
    """Wait for the controller's children: a Deployment per NodeUnit, the grid Service."""
    dg, sg = grids["deploymentgrid"], grids["servicegrid"]
    units = sorted(set(UNITS.values()))
    await eventually(
        lambda: (
            all(
                controlled_by(get(api, "deployments", f"deploymentgrid-demo-{unit}"), dg)
                for unit in units
            )
            and controlled_by(get(api, "services", SVC), sg)
        ),
        timeout=20,
        what="the controller's children of the upstream grids",
    )
    names = {d["metadata"]["name"] for d in api.list("deployments", namespace="default")}
    assert names == {f"deploymentgrid-demo-{unit}" for unit in units}
    for unit in units:
        deployment = get(api, "deployments", f"deploymentgrid-demo-{unit}")
        assert deployment is not None
        assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"zone": unit}
    service = get(api, "services", SVC)
    assert service is not None
    assert service["metadata"]["annotations"]["topologyKeys"] == '["zone"]'
    assert service["spec"]["selector"] == {"appGrid": "echo"}


@pytest.mark.timeout(90)
async def test_each_nodeunit_sees_only_its_own_pods(sim: KubeSim) -> None:
    async with workloads(sim) as sim_workloads:
        api, grids = await deploy_upstream_example(sim)
        # The controller starts once the CRDs exist, as it is deployed after them.
        async with controller(sim):
            await children_created(api, grids)
            await eventually(
                lambda: (
                    {u: len(ips) for u, ips in pod_ips_by_unit(api, UNITS).items()}
                    == {"zone-1": 2, "zone-2": 2, "zone-3": 2}
                ),
                timeout=30,
                what="two running pods per NodeUnit",
            )
            by_unit = pod_ips_by_unit(api, UNITS)
            every_ip = set().union(*by_unit.values())
            async with (
                running_wrapper(sim.url, WRAPPED_NODES["zone-1"]) as w1,
                running_wrapper(sim.url, WRAPPED_NODES["zone-2"]) as w2,
                running_wrapper(sim.url, WRAPPED_NODES["zone-3"]) as w3,
                ProxyClient(w1.url, name="kube-proxy-1").running() as p1,
                ProxyClient(w2.url, name="kube-proxy-2").running() as p2,
                ProxyClient(w3.url, name="kube-proxy-3").running() as p3,
            ):
                proxies = {"zone-1": p1, "zone-2": p2, "zone-3": p3}

                def views_match(expected: dict[str, set[str]]) -> bool:
                    return all(
                        proxies[unit].endpoint_ips("default", SVC) == expected[unit]
                        and proxies[unit].endpoint_ips("default", "echo-all") == every_ip
                        for unit in proxies
                    )

                await eventually(lambda: views_match(by_unit), timeout=10, what="per-unit views")
                service = p1.services.store.get(f"default/{SVC}")
                assert service is not None
                assert service["metadata"]["annotations"]["topologyKeys"] == '["zone"]'
                assert w1.sample("servicegroup_wrapper_endpoints_kept") == 2
                assert w1.sample("servicegroup_wrapper_endpoints_dropped") == 4

                # Relabel edge-1a (the node of w1) into zone-2: within one second its wrapper
                # serves zone-2's endpoints, which now include the pods on edge-1a itself.
                units = {**UNITS, "edge-1a": "zone-2"}
                loop = asyncio.get_running_loop()
                started = loop.time()
                sim_workloads.nodes.relabel_node("edge-1a", {"zone": "zone-2"})
                moved = pod_ips_by_unit(api, units)
                await eventually(
                    lambda: p1.endpoint_ips("default", SVC) == moved["zone-2"],
                    timeout=10.0,
                    what="edge-1a's wrapper to follow its relabel",
                )
                # The one-second goal is a latency figure, reported here and measured by
                # hack/bench wrapper; a timed assertion would only make this test flaky under load.
                print(f"relabel reached the wrapper's client in {loop.time() - started:.3f}s")
                # The other units' wrappers see the unit membership change too.
                await eventually(
                    lambda: (
                        p2.endpoint_ips("default", SVC) == moved["zone-2"]
                        and p3.endpoint_ips("default", SVC) == moved["zone-3"]
                    ),
                    timeout=5,
                    what="the other wrappers",
                )
                assert p1.endpoint_ips("default", "echo-all") == every_ip
