"""NodeUnits appearing and vanishing with node labels (SPEC A2, B9)."""

from __future__ import annotations

import asyncio

from ctl_scenarios.cluster import CtlCluster, scenario

DG = "deploymentgrid-demo"
SSG = "statefulsetgrid-demo"
GRIDS = (("deploymentgrids", DG), ("statefulsetgrids", SSG))


async def children(c: CtlCluster) -> dict[str, set[str]]:
    return {
        "deployments": await c.names("deployments"),
        "statefulsets": await c.names("statefulsets"),
    }


async def start_grids(c: CtlCluster) -> None:
    await c.create(c.grid("deploymentgrid-demo.yaml"))
    await c.create(c.grid("statefulsetgrid-demo.yaml"))
    for zone in c.zones:
        await c.wait_for(lambda z=zone: c.get("deployments", f"{DG}-{z}"), what=f"{DG}-{zone}")
        await c.wait_for(lambda z=zone: c.get("statefulsets", f"{SSG}-{z}"))


async def gone(c: CtlCluster, unit: str) -> None:
    await c.wait_for(lambda: c.absent("deployments", f"{DG}-{unit}"), what=f"{unit} gone")
    await c.wait_for(lambda: c.absent("statefulsets", f"{SSG}-{unit}"))


@scenario()
async def new_unit_gets_children_and_vanished_units_lose_them(c: CtlCluster) -> None:
    single, lone_node = c.single_node_unit()  # kubesim: zone-2, node-2a
    pair, pair_nodes = c.two_node_unit(besides=single)  # kubesim: zone-1, node-1a/node-1b
    *first_nodes, last_node = pair_nodes
    await c.start_controller()
    await start_grids(c)
    await c.settled()

    # Labelling a node zone-3 creates a NodeUnit: every grid using the key gets a child.
    await c.relabel(lone_node, "zone-3")
    await c.wait_for(lambda: c.get("deployments", f"{DG}-zone-3"), what="zone-3 Deployment")
    await c.wait_for(lambda: c.get("statefulsets", f"{SSG}-zone-3"))
    # The node was its unit's only node: that unit vanished, its children go.
    await gone(c, single)
    deployment = await c.get("deployments", f"{DG}-zone-3")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {c.key: "zone-3"}
    assert deployment["metadata"]["labels"]["superedge.io/nodeunit"] == "zone-3"

    # Removing the label of all but one of a unit's nodes changes no unit set: nothing
    # happens. (Pods must have settled first: each readiness change is a status write.)
    await c.grids_ready(*GRIDS)
    await c.settled()
    writes = c.writes()
    for node in first_nodes:
        await c.relabel(node, None)
    await c.settled(quiet=0.5)
    assert c.writes() == writes

    # The last node of that unit leaves: the unit's children are deleted.
    await c.remove_node(last_node)
    await gone(c, pair)
    remaining = sorted(c.units())
    assert await children(c) == {
        "deployments": {f"{DG}-{unit}" for unit in remaining},
        "statefulsets": {f"{SSG}-{unit}" for unit in remaining},
    }
    status = await c.status("deploymentgrids", DG)

    async def states_current() -> bool:
        states = (await c.status("deploymentgrids", DG)).get("states", {})
        return set(states) == set(remaining)

    await c.wait_for(states_current, what="vanished units out of status.states")
    # (read before or after the last status write)
    assert status["units"] in (len(remaining), len(remaining) + 1)
    deleted = await c.events(reason="Deleted", name=DG)
    assert {e["message"] for e in deleted} >= {
        f"Deleted Deployment {DG}-{single} of vanished NodeUnit {single}",
        f"Deleted Deployment {DG}-{pair} of vanished NodeUnit {pair}",
    }


@scenario()
async def grace_period_keeps_a_vanished_units_children_for_a_while(c: CtlCluster) -> None:
    unit, node = c.single_node_unit()
    grace = 1.5 * c.time_scale
    controller = await c.start_controller(nodeunit_grace_period=grace)
    await start_grids(c)
    await c.settled()

    loop = asyncio.get_running_loop()
    reconciles = controller.reconciles("deploymentgrid")
    await c.relabel(node, None)
    vanished_at = loop.time()
    # The grid was reconciled for the change, and the child is still there.
    await c.wait_for(
        lambda: c.events(reason="DeletionScheduled", name=DG), what="DeletionScheduled"
    )
    assert controller.reconciles("deploymentgrid") > reconciles
    assert await c.get("deployments", f"{DG}-{unit}") is not None

    await c.wait_for(lambda: c.absent("deployments", f"{DG}-{unit}"), what="deleted after grace")
    assert loop.time() - vanished_at >= grace
    await c.wait_for(lambda: c.absent("statefulsets", f"{SSG}-{unit}"))


@scenario()
async def a_unit_returning_within_the_grace_period_keeps_its_children(c: CtlCluster) -> None:
    unit, node = c.single_node_unit()
    controller = await c.start_controller(nodeunit_grace_period=3600)
    await start_grids(c)
    await c.settled()
    uid = await c.uid("deployments", f"{DG}-{unit}")

    await c.relabel(node, None)
    await c.wait_for(lambda: c.events(reason="DeletionScheduled", name=DG))
    await c.relabel(node, unit)
    await c.settled()
    assert await c.uid("deployments", f"{DG}-{unit}") == uid
    if c.has_request_accounting:
        assert c.count(verb="delete", resource="deployments.apps") == 0
    assert controller.is_leader()
