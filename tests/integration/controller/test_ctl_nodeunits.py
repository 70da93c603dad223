"""NodeUnits appearing and vanishing with node labels (SPEC A2, B9)."""

from __future__ import annotations

import asyncio

from ctl_support import ZONES, Env, RunningController, fixture

DG = "deploymentgrid-demo"
SSG = "statefulsetgrid-demo"


def children(env: Env) -> dict[str, set[str]]:
    return {
        "deployments": {d["metadata"]["name"] for d in env.list("deployments")},
        "statefulsets": {s["metadata"]["name"] for s in env.list("statefulsets")},
    }


async def start_grids(env: Env) -> None:
    env.create(fixture("deploymentgrid-demo.yaml"))
    env.create(fixture("statefulsetgrid-demo.yaml"))
    for zone in ZONES:
        await env.wait_for(lambda z=zone: env.get("deployments", f"{DG}-{z}"), what=f"{DG}-{zone}")
        await env.wait_for(lambda z=zone: env.get("statefulsets", f"{SSG}-{z}"))


async def test_new_unit_gets_children_and_vanished_units_lose_them(
    ctl_env: Env, ctl_controller: RunningController
) -> None:
    env = ctl_env
    await start_grids(env)
    await env.settled()

    # Labelling a node zone=zone-3 creates a NodeUnit: every grid using `zone` gets a child.
    env.relabel("node-2a", {"zone": "zone-3"})
    await env.wait_for(lambda: env.get("deployments", f"{DG}-zone-3"), what="zone-3 Deployment")
    await env.wait_for(lambda: env.get("statefulsets", f"{SSG}-zone-3"))
    # node-2a was zone-2's only node: zone-2 vanished, its children go.
    await env.wait_for(lambda: env.get("deployments", f"{DG}-zone-2") is None, what="zone-2 gone")
    await env.wait_for(lambda: env.get("statefulsets", f"{SSG}-zone-2") is None)
    deployment = env.get("deployments", f"{DG}-zone-3")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"zone": "zone-3"}
    assert deployment["metadata"]["labels"]["superedge.io/nodeunit"] == "zone-3"

    # Removing the label of one of zone-1's two nodes changes no unit set: nothing happens.
    await env.settled()
    writes = env.writes()
    env.relabel("node-1a", {"zone": None})
    await env.settled(quiet=0.5)
    assert env.writes() == writes

    # The last node of zone-1 is deleted: zone-1's children are deleted.
    env.api.delete("nodes", "node-1b")
    await env.wait_for(lambda: env.get("deployments", f"{DG}-zone-1") is None, what="zone-1 gone")
    await env.wait_for(lambda: env.get("statefulsets", f"{SSG}-zone-1") is None)
    assert children(env) == {
        "deployments": {f"{DG}-zone-0", f"{DG}-zone-3"},
        "statefulsets": {f"{SSG}-zone-0", f"{SSG}-zone-3"},
    }
    status = env.get("deploymentgrids", DG)["status"]  # type: ignore[index]
    await env.wait_for(
        lambda: (
            set((env.get("deploymentgrids", DG) or {}).get("status", {}).get("states", {}))
            == {"zone-0", "zone-3"}
        ),
        what="vanished units out of status.states",
    )
    assert status["units"] in (2, 3)  # (read before or after the last status write)
    deleted = env.events(reason="Deleted", name=DG)
    assert {e["message"] for e in deleted} >= {
        f"Deleted Deployment {DG}-zone-2 of vanished NodeUnit zone-2",
        f"Deleted Deployment {DG}-zone-1 of vanished NodeUnit zone-1",
    }


async def test_grace_period_keeps_a_vanished_units_children_for_a_while(ctl_env: Env) -> None:
    env = ctl_env
    grace = 1.5
    controller = await env.start_controller(nodeunit_grace_period=grace)
    await start_grids(env)
    await env.settled()

    loop = asyncio.get_running_loop()
    reconciles = controller.reconciles("deploymentgrid")
    env.relabel("node-2a", {"zone": None})
    vanished_at = loop.time()
    # The grid was reconciled for the change, and the child is still there.
    await env.wait_for(
        lambda: env.events(reason="DeletionScheduled", name=DG), what="DeletionScheduled"
    )
    assert controller.reconciles("deploymentgrid") > reconciles
    assert env.get("deployments", f"{DG}-zone-2") is not None

    await env.wait_for(
        lambda: env.get("deployments", f"{DG}-zone-2") is None, what="deleted after grace"
    )
    assert loop.time() - vanished_at >= grace
    await env.wait_for(lambda: env.get("statefulsets", f"{SSG}-zone-2") is None)


async def test_a_unit_returning_within_the_grace_period_keeps_its_children(
    ctl_env: Env,
) -> None:
    env = ctl_env
    controller = await env.start_controller(nodeunit_grace_period=3600)
    await start_grids(env)
    await env.settled()
    uid = env.get("deployments", f"{DG}-zone-2")["metadata"]["uid"]  # type: ignore[index]

    env.relabel("node-2a", {"zone": None})
    await env.wait_for(lambda: env.events(reason="DeletionScheduled", name=DG))
    env.relabel("node-2a", {"zone": "zone-2"})
    await env.settled()
    assert env.get("deployments", f"{DG}-zone-2")["metadata"]["uid"] == uid  # type: ignore[index]
    assert env.count(verb="delete", resource="deployments.apps") == 0
    assert controller.is_leader()
