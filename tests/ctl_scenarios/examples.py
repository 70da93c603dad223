"""The upstream documentation's examples, end to end: stateless, stateful, canary."""

from __future__ import annotations

import copy
from typing import Any

from ctl_scenarios.cluster import CtlCluster, scenario

DG = "deploymentgrid-demo"


@scenario()
async def stateless_example(c: CtlCluster) -> None:
    c.require_workloads()
    await c.start_controller()
    await c.create(c.grid("deploymentgrid-demo.yaml"))
    await c.create(c.grid("servicegrid-demo.yaml"))

    for zone in c.zones:
        name = f"{DG}-{zone}"
        await c.wait_for(lambda n=name: c.deployment_ready(n, 2), what=f"{name} 2/2 ready")
        deployment = await c.get("deployments", name)
        assert deployment is not None
        assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {c.key: zone}
        labels = deployment["metadata"]["labels"]
        assert labels["superedge.io/grid-selector"] == DG
        # A key with a DNS prefix is no label value: then the label is omitted (resources.md).
        assert labels.get("superedge.io/grid-uniq-key") == (None if "/" in c.key else c.key)
        pods = [
            p
            for p in await c.pods_of("appGrid=echo")
            if p["metadata"]["name"].startswith(name + "-")
        ]
        assert len(pods) == 2
        assert {c.unit_of_pod(p) for p in pods} == {zone}

    service = await c.wait_for(lambda: c.get("services", "servicegrid-demo-svc"))
    assert service["metadata"]["annotations"]["topologyKeys"] == f'["{c.key}"]'
    assert service["spec"]["selector"] == {"appGrid": "echo"}
    assert service["metadata"]["ownerReferences"][0]["kind"] == "ServiceGrid"

    async def all_ready() -> dict[str, Any] | None:
        status = await c.status("deploymentgrids", DG)
        return status if status.get("readyUnits") == len(c.zones) else None

    status = await c.wait_for(all_ready, what=f"status with {len(c.zones)} ready units")
    assert status["units"] == len(c.zones)
    assert set(status["states"]) == set(c.zones)
    for state in status["states"].values():
        assert state["replicas"] == 2 and state["readyReplicas"] == 2
        assert any(
            cond["type"] == "Available" and cond["status"] == "True" for cond in state["conditions"]
        )
    ready = await c.condition("deploymentgrids", DG, "Ready")
    assert ready is not None and ready["status"] == "True"
    sg_ready = await c.wait_for(
        lambda: c.condition("servicegrids", "servicegrid-demo", "Ready"), what="sg Ready"
    )
    assert sg_ready["status"] == "True"

    # Printer columns, as `kubectl get dg` shows them.
    table = await c.table("deploymentgrids")
    columns = [col["name"] for col in table["columnDefinitions"]]
    assert columns[:5] == ["Name", "Key", "Units", "Ready", "Age"]
    assert table["rows"][0]["cells"][:4] == [DG, c.key, len(c.zones), len(c.zones)]


@scenario()
async def stateful_example(c: CtlCluster) -> None:
    c.require_workloads()
    await c.start_controller()
    await c.create(c.grid("statefulsetgrid-demo.yaml"))
    for zone in c.zones:
        name = f"statefulsetgrid-demo-{zone}"

        async def pods(prefix: str = name) -> list[str] | None:
            names = sorted(
                p["metadata"]["name"]
                for p in await c.pods_of("appGrid=echo")
                if p["metadata"]["name"].rsplit("-", 1)[0] == prefix
                and any(
                    cond["type"] == "Ready" and cond["status"] == "True"
                    for cond in (p.get("status") or {}).get("conditions") or ()
                )
            )
            return names if len(names) == 3 else None

        names = await c.wait_for(pods, what=f"3 ready pods of {name}", timeout=30)
        assert names == [f"{name}-0", f"{name}-1", f"{name}-2"]
        units = set()
        for pod_name in names:
            pod = await c.get("pods", pod_name)
            assert pod is not None
            units.add(c.unit_of_pod(pod))
        assert units == {zone}
        statefulset = await c.get("statefulsets", name)
        assert statefulset is not None
        assert statefulset["spec"]["serviceName"] == "servicegrid-demo-svc"

    async def states() -> dict[str, Any] | None:
        status = await c.status("statefulsetgrids", "statefulsetgrid-demo")
        return status if status.get("readyUnits") == len(c.zones) else None

    status = await c.wait_for(states, what="StatefulSetGrid status")
    assert {s["readyReplicas"] for s in status["states"].values()} == {3}


@scenario()
async def canary_example(c: CtlCluster) -> None:
    c.require_workloads()
    await c.start_controller()
    await c.add_unit("zone1", node="node-c1")
    await c.add_unit("zone2", node="node-c2")
    canary = c.grid("deploymentgrid-canary.yaml")
    # The documentation elides `template` ("......"); give it the stateless example's.
    canary["spec"]["template"] = c.grid("deploymentgrid-demo.yaml")["spec"]["template"]
    canary["spec"]["autoDeleteUnusedTemplate"] = True
    canary["spec"]["templatePool"]["test3"] = copy.deepcopy(canary["spec"]["templatePool"]["test2"])
    await c.create(canary)

    await c.wait_for(lambda: c.deployment_ready(f"{DG}-zone1", 2))
    await c.wait_for(lambda: c.deployment_ready(f"{DG}-zone2", 3))
    assert await c.image(f"{DG}-zone1") == "superedge/echoserver:2.2"
    assert await c.image(f"{DG}-zone2") == "superedge/echoserver:2.3"
    for zone in c.zones:  # everyone else: defaultTemplateName (test1)
        await c.wait_for(lambda z=zone: c.deployment_ready(f"{DG}-{z}", 2))
        assert await c.image(f"{DG}-{zone}") == "superedge/echoserver:2.2"

    # autoDeleteUnusedTemplate removed test3 only (test1 and test2 are referenced).
    async def pool() -> set[str] | None:
        spec = (await c.get("deploymentgrids", DG) or {}).get("spec") or {}
        names = set(spec.get("templatePool") or {})
        return names if "test3" not in names else None

    assert await c.wait_for(pool, what="test3 pruned") == {"test1", "test2"}
    await c.settled()

    # Move zone1 to test2: only zone1's Deployment changes.
    generations = {}
    for zone in ("zone1", "zone2", *c.zones):
        obj = await c.get("deployments", f"{DG}-{zone}")
        assert obj is not None
        generations[zone] = obj["metadata"]["generation"]
    applies = c.count(verb="patch", resource="deployments.apps") if c.has_request_accounting else 0
    applied = c.child_writes("DeploymentGrid", "apply")
    await c.patch("deploymentgrids", DG, {"spec": {"templates": {"zone1": "test2"}}})

    async def moved() -> bool:
        return await c.image(f"{DG}-zone1") == "superedge/echoserver:2.3"

    await c.wait_for(moved, what="zone1 moved")
    await c.wait_for(lambda: c.deployment_ready(f"{DG}-zone1", 3))
    await c.settled()
    if c.has_request_accounting:
        assert c.count(verb="patch", resource="deployments.apps") == applies + 1
    assert c.child_writes("DeploymentGrid", "apply") == applied + 1
    for zone, generation in generations.items():
        if zone != "zone1":
            obj = await c.get("deployments", f"{DG}-{zone}")
            assert obj is not None and obj["metadata"]["generation"] == generation

    # test1 is now referenced only by defaultTemplateName: still kept.
    grid = await c.get("deploymentgrids", DG)
    assert grid is not None
    assert set(grid["spec"]["templatePool"]) == {"test1", "test2"}
