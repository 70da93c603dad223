"""Drift, template edits and garbage collection (SPEC A2, B3)."""

from __future__ import annotations

import copy
from typing import Any

from ctl_scenarios.cluster import CtlCluster, scenario

DG = "deploymentgrid-demo"
APPLY = {"verb": "patch", "resource": "deployments.apps"}


async def created(c: CtlCluster, grid: dict[str, Any]) -> None:
    await c.create(grid)
    name = grid["metadata"]["name"]
    for zone in c.zones:
        await c.wait_for(lambda z=zone: c.get("deployments", f"{name}-{z}"))
    await c.settled()


@scenario()
async def hand_edits_of_our_fields_are_reverted_others_survive(c: CtlCluster) -> None:
    await c.start_controller()
    grid = c.grid("deploymentgrid-demo.yaml")
    del grid["spec"]["template"]["replicas"]  # replicas left to someone else (an HPA)
    await created(c, grid)
    child = f"{DG}-{c.zones[0]}"

    # An annotation added by hand, and replicas set by another manager: both survive.
    await c.patch("deployments", child, {"metadata": {"annotations": {"example.com/owner": "ops"}}})
    await c.patch(
        "deployments", child, {"spec": {"replicas": 4}}, manager="horizontal-pod-autoscaler"
    )
    await c.settled()
    obj = await c.get("deployments", child)
    assert obj is not None
    assert obj["metadata"]["annotations"]["example.com/owner"] == "ops"
    assert obj["spec"]["replicas"] == 4

    # The image changed by hand is put back; the others stay.
    applies = c.count(**APPLY) if c.has_request_accounting else 0
    applied = c.child_writes("DeploymentGrid", "apply")
    await c.patch(
        "deployments",
        child,
        [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "evil:1"}],
        patch_type="json",
    )

    async def reverted() -> bool:
        return await c.image(child) == "superedge/echoserver:2.2"

    await c.wait_for(reverted, what="image reverted")
    await c.settled()
    if c.has_request_accounting:
        assert c.count(**APPLY) == applies + 1
    assert c.child_writes("DeploymentGrid", "apply") == applied + 1
    obj = await c.get("deployments", child)
    assert obj is not None
    assert obj["metadata"]["annotations"]["example.com/owner"] == "ops"
    assert obj["spec"]["replicas"] == 4
    assert await c.events(reason="Updated", name=DG)


@scenario()
async def a_child_deleted_by_hand_is_created_again(c: CtlCluster) -> None:
    await c.start_controller()
    await created(c, c.grid("deploymentgrid-demo.yaml"))
    child = f"{DG}-{c.zones[0]}"
    uid = await c.uid("deployments", child)
    await c.delete("deployments", child)

    async def recreated() -> bool:
        return await c.uid("deployments", child) not in (None, uid)

    assert await c.wait_for(recreated, what="child created again")


@scenario()
async def template_edit_writes_only_to_units_using_it(c: CtlCluster) -> None:
    c.require_units(2)
    edited = c.zones[1]  # the one unit on template test2 (kubesim: zone-1)
    await c.start_controller()
    canary = c.grid("deploymentgrid-canary.yaml")
    canary["spec"]["template"] = copy.deepcopy(canary["spec"]["templatePool"]["test1"])
    canary["spec"]["templates"] = {edited: "test2"}
    await created(c, canary)
    generations = {}
    for zone in c.zones:
        obj = await c.get("deployments", f"{DG}-{zone}")
        assert obj is not None
        generations[zone] = obj["metadata"]["generation"]
    applies = c.count(**APPLY) if c.has_request_accounting else 0
    applied = c.child_writes("DeploymentGrid", "apply")

    grid = await c.get("deploymentgrids", DG)
    assert grid is not None
    containers = copy.deepcopy(grid["spec"]["templatePool"]["test2"]["template"]["spec"])
    containers["containers"][0]["image"] = "superedge/echoserver:2.4"
    await c.patch(
        "deploymentgrids",
        DG,
        {"spec": {"templatePool": {"test2": {"template": {"spec": containers}}}}},
    )

    async def edited_image() -> bool:
        return await c.image(f"{DG}-{edited}") == "superedge/echoserver:2.4"

    await c.wait_for(edited_image, what=f"{edited} updated")
    await c.settled()

    if c.has_request_accounting:
        assert c.count(**APPLY) == applies + 1
    assert c.child_writes("DeploymentGrid", "apply") == applied + 1
    for zone in c.zones:
        if zone == edited:
            continue
        obj = await c.get("deployments", f"{DG}-{zone}")
        assert obj is not None and obj["metadata"]["generation"] == generations[zone]
        assert await c.image(f"{DG}-{zone}") == "superedge/echoserver:2.2"


@scenario()
async def deleting_a_grid_deletes_its_children(c: CtlCluster) -> None:
    await c.start_controller()
    await created(c, c.grid("deploymentgrid-demo.yaml"))
    await c.create(c.grid("servicegrid-demo.yaml"))
    await c.wait_for(lambda: c.get("services", "servicegrid-demo-svc"))

    await c.delete("deploymentgrids", DG)
    await c.delete("servicegrids", "servicegrid-demo")

    async def collected() -> bool:
        return not await c.items("deployments")

    await c.wait_for(collected, what="Deployments collected")
    await c.wait_for(lambda: c.absent("services", "servicegrid-demo-svc"))
    await c.settled()
    # Garbage collection did it, not us.
    if c.has_request_accounting:
        assert c.count(verb="delete", resource="deployments.apps") == 0
    assert c.child_writes("DeploymentGrid", "delete") == 0
