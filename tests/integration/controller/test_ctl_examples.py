"""The upstream documentation's examples, end to end on kubesim with workload simulation."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp
from ctl_support import NODES, ZONES, Env, RunningController, fixture

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def node_zone(pod: dict[str, Any]) -> str:
    return NODES[pod["spec"]["nodeName"]]


async def test_stateless_example(ctl_env: Env, ctl_controller: RunningController) -> None:
    env = ctl_env
    env.require_workloads()
    env.create(fixture("deploymentgrid-demo.yaml"))
    env.create(fixture("servicegrid-demo.yaml"))

    for zone in ZONES:
        name = f"deploymentgrid-demo-{zone}"
        await env.wait_for(lambda n=name: env.deployment_ready(n, 2), what=f"{name} 2/2 ready")
        deployment = env.get("deployments", name)
        assert deployment is not None
        assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"zone": zone}
        labels = deployment["metadata"]["labels"]
        assert labels["superedge.io/grid-selector"] == "deploymentgrid-demo"
        assert labels["superedge.io/grid-uniq-key"] == "zone"
        pods = [
            p for p in env.pods_of("appGrid=echo") if p["metadata"]["name"].startswith(name + "-")
        ]
        assert len(pods) == 2
        assert {node_zone(p) for p in pods} == {zone}

    service = await env.wait_for(lambda: env.get("services", "servicegrid-demo-svc"))
    assert service["metadata"]["annotations"]["topologyKeys"] == '["zone"]'
    assert service["spec"]["selector"] == {"appGrid": "echo"}
    assert service["metadata"]["ownerReferences"][0]["kind"] == "ServiceGrid"

    def all_ready() -> dict[str, Any] | None:
        grid = env.get("deploymentgrids", "deploymentgrid-demo")
        status = (grid or {}).get("status") or {}
        return status if status.get("readyUnits") == 3 else None

    status = await env.wait_for(all_ready, what="status with 3 ready units")
    assert status["units"] == 3
    assert set(status["states"]) == set(ZONES)
    for state in status["states"].values():
        assert state["replicas"] == 2 and state["readyReplicas"] == 2
        assert any(c["type"] == "Available" and c["status"] == "True" for c in state["conditions"])
    ready = env.condition("deploymentgrids", "deploymentgrid-demo", "Ready")
    assert ready is not None and ready["status"] == "True"
    sg_ready = await env.wait_for(
        lambda: env.condition("servicegrids", "servicegrid-demo", "Ready"), what="sg Ready"
    )
    assert sg_ready["status"] == "True"

    # Printer columns, as `kubectl get dg` shows them.
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{env.sim.url}/apis/superedge.io/v1/namespaces/default/deploymentgrids",
            headers={"Accept": TABLE},
        ) as response,
    ):
        table = await response.json()
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns[:5] == ["Name", "Key", "Units", "Ready", "Age"]
    assert table["rows"][0]["cells"][:4] == ["deploymentgrid-demo", "zone", 3, 3]


async def test_stateful_example(ctl_env: Env, ctl_controller: RunningController) -> None:
    env = ctl_env
    env.require_workloads()
    env.create(fixture("statefulsetgrid-demo.yaml"))
    for zone in ZONES:
        name = f"statefulsetgrid-demo-{zone}"

        def pods(prefix: str = name) -> list[str] | None:
            names = sorted(
                p["metadata"]["name"]
                for p in env.pods_of("appGrid=echo")
                if p["metadata"]["name"].rsplit("-", 1)[0] == prefix
                and any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in (p.get("status") or {}).get("conditions") or ()
                )
            )
            return names if len(names) == 3 else None

        names = await env.wait_for(pods, what=f"3 ready pods of {name}", timeout=30)
        assert names == [f"{name}-0", f"{name}-1", f"{name}-2"]
        assert {node_zone(env.get("pods", n)) for n in names} == {zone}  # type: ignore[arg-type]
        statefulset = env.get("statefulsets", name)
        assert statefulset is not None
        assert statefulset["spec"]["serviceName"] == "servicegrid-demo-svc"

    def states() -> dict[str, Any] | None:
        status = (env.get("statefulsetgrids", "statefulsetgrid-demo") or {}).get("status") or {}
        return status if status.get("readyUnits") == 3 else None

    status = await env.wait_for(states, what="StatefulSetGrid status")
    assert {s["readyReplicas"] for s in status["states"].values()} == {3}


async def test_canary_example(ctl_env: Env, ctl_controller: RunningController) -> None:
    env = ctl_env
    env.require_workloads()
    env.add_node("node-c1", zone="zone1")
    env.add_node("node-c2", zone="zone2")
    canary = fixture("deploymentgrid-canary.yaml")
    # The documentation elides `template` ("......"); give it the stateless example's.
    canary["spec"]["template"] = fixture("deploymentgrid-demo.yaml")["spec"]["template"]
    canary["spec"]["autoDeleteUnusedTemplate"] = True
    canary["spec"]["templatePool"]["test3"] = copy.deepcopy(canary["spec"]["templatePool"]["test2"])
    env.create(canary)

    def image(unit: str) -> str | None:
        obj = env.get("deployments", f"deploymentgrid-demo-{unit}")
        if obj is None:
            return None
        return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])

    await env.wait_for(lambda: env.deployment_ready("deploymentgrid-demo-zone1", 2))
    await env.wait_for(lambda: env.deployment_ready("deploymentgrid-demo-zone2", 3))
    assert image("zone1") == "superedge/echoserver:2.2"
    assert image("zone2") == "superedge/echoserver:2.3"
    for zone in ZONES:  # everyone else: defaultTemplateName (test1)
        await env.wait_for(lambda z=zone: env.deployment_ready(f"deploymentgrid-demo-{z}", 2))
        assert image(zone) == "superedge/echoserver:2.2"

    # autoDeleteUnusedTemplate removed test3 only (test1 and test2 are referenced).
    def pool() -> set[str] | None:
        spec = (env.get("deploymentgrids", "deploymentgrid-demo") or {}).get("spec") or {}
        names = set(spec.get("templatePool") or {})
        return names if "test3" not in names else None

    assert await env.wait_for(pool, what="test3 pruned") == {"test1", "test2"}
    await env.settled()

    # Move zone1 to test2: only zone1's Deployment changes.
    generations = {
        z: env.get("deployments", f"deploymentgrid-demo-{z}")["metadata"]["generation"]  # type: ignore[index]
        for z in ("zone1", "zone2", *ZONES)
    }
    applies = env.count(verb="patch", resource="deployments.apps")
    env.patch("deploymentgrids", "deploymentgrid-demo", {"spec": {"templates": {"zone1": "test2"}}})
    await env.wait_for(lambda: image("zone1") == "superedge/echoserver:2.3", what="zone1 moved")
    await env.wait_for(lambda: env.deployment_ready("deploymentgrid-demo-zone1", 3))
    await env.settled()
    assert env.count(verb="patch", resource="deployments.apps") == applies + 1
    for zone, generation in generations.items():
        if zone != "zone1":
            obj = env.get("deployments", f"deploymentgrid-demo-{zone}")
            assert obj is not None and obj["metadata"]["generation"] == generation

    # test1 is now referenced only by defaultTemplateName: still kept.
    spec = env.get("deploymentgrids", "deploymentgrid-demo")["spec"]  # type: ignore[index]
    assert set(spec["templatePool"]) == {"test1", "test2"}
