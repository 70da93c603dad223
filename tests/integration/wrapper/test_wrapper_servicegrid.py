"""The upstream ServiceGrid example end to end on kubesim with workloads: one wrapper per
NodeUnit, each seen through a kube-proxy-like watch client.

The grid children (a Deployment per NodeUnit, the Service `servicegrid-demo-svc`) are the
ones the controller renders (servicegroup.grid.render), applied by the test so that this
suite does not depend on the controller process; pods, their IPs and the EndpointSlices come
from kubesim's workload simulation (scheduler, kubelets, EndpointSlice controller).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from wrap_support import UNITS, ProxyClient, eventually, running_wrapper

from servicegroup.api.crds import crd_manifests
from servicegroup.api.models import parse_grid
from servicegroup.grid.render import render_service, render_units
from servicegroup.kubesim.app import KubeSim
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


async def deploy_upstream_example(sim: KubeSim) -> LocalClient:
    api = sim.client(manager="test")
    for crd in crd_manifests():
        api.create("customresourcedefinitions", crd)
    await sim.settle()
    dg = api.create("deploymentgrids", load("deploymentgrid-demo.yaml"))
    sg = api.create("servicegrids", load("servicegrid-demo.yaml"))
    ctrl = sim.client(manager="servicegroup-controller")
    plan = render_units(parse_grid(dg), sorted(set(UNITS.values())))
    assert not plan.failures
    for child in plan.children.values():
        ctrl.apply("deployments", child.obj)
    ctrl.apply("services", render_service(parse_grid(sg)))
    # An ordinary Service over the same pods: its endpoints must pass through untouched.
    api.create(
        "services",
        {
            "metadata": {"name": "echo-all", "namespace": "default"},
            "spec": {"selector": {"appGrid": "echo"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    return api


@pytest.mark.timeout(90)
async def test_each_nodeunit_sees_only_its_own_pods(sim: KubeSim) -> None:
    async with workloads(sim) as sim_workloads:
        api = await deploy_upstream_example(sim)
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
                timeout=1.0,
                what="edge-1a's wrapper to follow its relabel",
            )
            elapsed = loop.time() - started
            assert elapsed < 1.0
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
