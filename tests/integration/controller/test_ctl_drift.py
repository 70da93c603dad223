"""Drift, template edits and garbage collection (SPEC A2, B3)."""

from __future__ import annotations

import copy
from typing import Any

from ctl_support import ZONES, Env, RunningController, fixture

DG = "deploymentgrid-demo"


def image(env: Env, name: str) -> str | None:
    obj = env.get("deployments", name)
    return None if obj is None else obj["spec"]["template"]["spec"]["containers"][0]["image"]


async def created(env: Env, grid: dict[str, Any]) -> None:
    env.create(grid)
    name = grid["metadata"]["name"]
    for zone in ZONES:
        await env.wait_for(lambda z=zone: env.get("deployments", f"{name}-{z}"))
    await env.settled()


async def test_hand_edits_of_our_fields_are_reverted_others_survive(
    ctl_env: Env, ctl_controller: RunningController
) -> None:
    env = ctl_env
    grid = fixture("deploymentgrid-demo.yaml")
    del grid["spec"]["template"]["replicas"]  # replicas left to someone else (an HPA)
    await created(env, grid)
    child = f"{DG}-zone-0"

    # An annotation added by hand, and replicas set by another manager: both survive.
    env.patch("deployments", child, {"metadata": {"annotations": {"example.com/owner": "ops"}}})
    env.patch("deployments", child, {"spec": {"replicas": 4}}, manager="horizontal-pod-autoscaler")
    await env.settled()
    obj = env.get("deployments", child)
    assert obj is not None
    assert obj["metadata"]["annotations"]["example.com/owner"] == "ops"
    assert obj["spec"]["replicas"] == 4

    # The image changed by hand is put back; the others stay.
    applies = env.count(verb="patch", resource="deployments.apps")
    env.patch(
        "deployments",
        child,
        [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "evil:1"}],
        patch_type="json",
    )
    await env.wait_for(
        lambda: image(env, child) == "superedge/echoserver:2.2", what="image reverted"
    )
    await env.settled()
    assert env.count(verb="patch", resource="deployments.apps") == applies + 1
    obj = env.get("deployments", child)
    assert obj is not None
    assert obj["metadata"]["annotations"]["example.com/owner"] == "ops"
    assert obj["spec"]["replicas"] == 4
    assert env.events(reason="Updated", name=DG)


async def test_a_child_deleted_by_hand_is_created_again(
    ctl_env: Env, ctl_controller: RunningController
) -> None:
    env = ctl_env
    await created(env, fixture("deploymentgrid-demo.yaml"))
    uid = env.get("deployments", f"{DG}-zone-0")["metadata"]["uid"]  # type: ignore[index]
    env.api.delete("deployments", f"{DG}-zone-0", namespace="default")
    recreated = await env.wait_for(
        lambda: (
            (env.get("deployments", f"{DG}-zone-0") or {}).get("metadata", {}).get("uid")
            not in (None, uid)
        ),
        what="child created again",
    )
    assert recreated


async def test_template_edit_writes_only_to_units_using_it(
    ctl_env: Env, ctl_controller: RunningController
) -> None:
    env = ctl_env
    canary = fixture("deploymentgrid-canary.yaml")
    canary["spec"]["template"] = copy.deepcopy(canary["spec"]["templatePool"]["test1"])
    canary["spec"]["templates"] = {"zone-1": "test2"}
    await created(env, canary)
    generations = {
        z: env.get("deployments", f"{DG}-{z}")["metadata"]["generation"]  # type: ignore[index]
        for z in ZONES
    }
    applies = env.count(verb="patch", resource="deployments.apps")

    grid = env.get("deploymentgrids", DG)
    assert grid is not None
    containers = copy.deepcopy(grid["spec"]["templatePool"]["test2"]["template"]["spec"])
    containers["containers"][0]["image"] = "superedge/echoserver:2.4"
    env.patch(
        "deploymentgrids",
        DG,
        {"spec": {"templatePool": {"test2": {"template": {"spec": containers}}}}},
    )
    await env.wait_for(lambda: image(env, f"{DG}-zone-1") == "superedge/echoserver:2.4")
    await env.settled()

    assert env.count(verb="patch", resource="deployments.apps") == applies + 1
    for zone in ("zone-0", "zone-2"):
        obj = env.get("deployments", f"{DG}-{zone}")
        assert obj is not None and obj["metadata"]["generation"] == generations[zone]
        assert image(env, f"{DG}-{zone}") == "superedge/echoserver:2.2"


async def test_deleting_a_grid_deletes_its_children(
    ctl_env: Env, ctl_controller: RunningController
) -> None:
    env = ctl_env
    await created(env, fixture("deploymentgrid-demo.yaml"))
    env.create(fixture("servicegrid-demo.yaml"))
    await env.wait_for(lambda: env.get("services", "servicegrid-demo-svc"))

    env.api.delete("deploymentgrids", DG, namespace="default")
    env.api.delete("servicegrids", "servicegrid-demo", namespace="default")
    await env.wait_for(lambda: not env.list("deployments"), what="Deployments collected")
    await env.wait_for(lambda: env.get("services", "servicegrid-demo-svc") is None)
    await env.settled()
    # Garbage collection did it, not us.
    assert env.count(verb="delete", resource="deployments.apps") == 0
