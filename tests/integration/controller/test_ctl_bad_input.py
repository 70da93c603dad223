"""Bad input gets a condition and a Warning Event, never a crash or a hot loop (SPEC B5-B8).

Inputs the CRD's CEL rules reject are sent to `ctl_lenient_env`, a cluster without those
rules, so the controller's own validation is what is tested.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from ctl_support import ZONES, Env, RunningController, fixture

DG = "deploymentgrid-demo"


def demo(**spec: Any) -> dict[str, Any]:
    grid = fixture("deploymentgrid-demo.yaml")
    grid["spec"].update(spec)
    return grid


def warnings(env: Env, reason: str, name: str = DG) -> list[dict[str, Any]]:
    return [e for e in env.events(reason=reason, name=name) if e["type"] == "Warning"]


async def reported(
    env: Env, plural: str, name: str, ctype: str, reason: str | None = None
) -> dict[str, Any]:
    """Wait for condition `ctype` (True) and its Warning Event, then for the writes to stop."""
    condition = await env.wait_for(
        lambda: env.condition(plural, name, ctype), what=f"{ctype} on {name}"
    )
    assert condition["status"] == "True"
    await env.wait_for(lambda: warnings(env, reason or ctype, name), what=f"{ctype} Event")
    # A hot loop would never let this settle.
    await env.settled(quiet=1.0, timeout=15)
    return condition


@pytest.mark.parametrize(
    ("key", "message"),
    [("", "spec.gridUniqKey: Required value"), ("not a key!", "spec.gridUniqKey: Invalid value")],
)
async def test_invalid_grid_uniq_key(ctl_lenient_env: Env, key: str, message: str) -> None:
    env = ctl_lenient_env
    controller = await env.start_controller()
    env.create(demo(gridUniqKey=key))
    condition = await reported(env, "deploymentgrids", DG, "InvalidSpec")
    assert message in condition["message"]
    ready = env.condition("deploymentgrids", DG, "Ready")
    assert ready is not None and ready["reason"] == "InvalidSpec"
    assert env.list("deployments") == []
    assert not controller.task.done()


async def test_grid_name_too_long_for_its_children(ctl_lenient_env: Env) -> None:
    env = ctl_lenient_env
    await env.start_controller()
    name = "g" * 50 + "-toolong"
    grid = demo()
    grid["metadata"]["name"] = name
    env.create(grid)
    condition = await reported(env, "deploymentgrids", name, "InvalidSpec")
    assert "metadata.name: Too long" in condition["message"]
    assert env.list("deployments") == []


async def test_unit_values_with_upper_case_underscore_and_dot(
    ctl_env: Env, ctl_controller: RunningController
) -> None:
    env = ctl_env
    env.add_node("node-odd", zone="Zone_A.1")
    env.create(demo())

    def odd_child() -> dict[str, Any] | None:
        for child in env.list("deployments", label_selector="superedge.io/nodeunit=Zone_A.1"):
            return child
        return None

    child = await env.wait_for(odd_child, what="child of unit Zone_A.1")
    name = child["metadata"]["name"]
    assert name.startswith(f"{DG}-zone-a-1-") and len(name) == len(f"{DG}-zone-a-1-") + 8
    assert child["spec"]["template"]["spec"]["nodeSelector"] == {"zone": "Zone_A.1"}
    for zone in ZONES:  # valid values keep the exact upstream names
        await env.wait_for(lambda z=zone: env.get("deployments", f"{DG}-{z}"))
    await env.settled()
    assert env.condition("deploymentgrids", DG, "InvalidSpec") is None


async def test_missing_pool_entry_fails_only_its_unit(ctl_lenient_env: Env) -> None:
    env = ctl_lenient_env
    await env.start_controller()
    env.create(demo(templates={"zone-1": "nope"}))
    condition = await reported(env, "deploymentgrids", DG, "TemplateNotFound")
    assert condition["message"].startswith("zone-1: spec.templates[zone-1]: Not found")
    names = {d["metadata"]["name"] for d in env.list("deployments")}
    assert names == {f"{DG}-zone-0", f"{DG}-zone-2"}


async def test_missing_default_template(ctl_lenient_env: Env) -> None:
    env = ctl_lenient_env
    await env.start_controller()
    env.create(demo(defaultTemplateName="gone", templates={"zone-0": "default"}))
    condition = await reported(env, "deploymentgrids", DG, "TemplateNotFound")
    assert "spec.defaultTemplateName" in condition["message"]
    names = {d["metadata"]["name"] for d in env.list("deployments")}
    assert names == {f"{DG}-zone-0"}


async def test_foreign_deployment_of_the_same_name_is_never_modified(
    ctl_env: Env, ctl_controller: RunningController
) -> None:
    env = ctl_env
    foreign = copy.deepcopy(fixture("deploymentgrid-demo.yaml")["spec"]["template"])
    foreign["replicas"] = 1
    existing = env.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"{DG}-zone-1", "namespace": "default"},
            "spec": foreign,
        }
    )
    env.create(demo())
    condition = await reported(env, "deploymentgrids", DG, "ChildConflict")
    assert condition["reason"] == "NotControlledByGrid"
    assert condition["message"].startswith(f"zone-1: Deployment {DG}-zone-1 exists")
    now = env.get("deployments", f"{DG}-zone-1")
    assert now is not None
    assert now["metadata"]["generation"] == existing["metadata"]["generation"]
    assert "ownerReferences" not in now["metadata"]
    managers = {m["manager"] for m in now["metadata"].get("managedFields") or ()}
    assert "servicegroup-controller" not in managers
    assert env.get("deployments", f"{DG}-zone-0") is not None

    # The foreign object is deleted: the grid takes the name at once.
    env.api.delete("deployments", f"{DG}-zone-1", namespace="default")
    await env.wait_for(
        lambda: (
            (env.get("deployments", f"{DG}-zone-1") or {})
            .get("metadata", {})
            .get("ownerReferences")
        ),
        what="our child created",
    )
    await env.wait_for(lambda: env.condition("deploymentgrids", DG, "ChildConflict") is None)


async def test_statefulset_immutable_field_change(ctl_env: Env) -> None:
    env = ctl_env
    controller = await env.start_controller(retry_rejected_after=0.5)
    env.create(fixture("statefulsetgrid-demo.yaml"))
    for zone in ZONES:
        await env.wait_for(lambda z=zone: env.get("statefulsets", f"statefulsetgrid-demo-{z}"))
    await env.settled()

    env.patch(
        "statefulsetgrids", "statefulsetgrid-demo", {"spec": {"template": {"serviceName": "other"}}}
    )
    condition = await env.wait_for(
        lambda: env.condition("statefulsetgrids", "statefulsetgrid-demo", "ApplyFailed"),
        what="ApplyFailed",
    )
    assert condition["reason"] == "Invalid"
    assert "Forbidden" in condition["message"] or "forbidden" in condition["message"]
    assert warnings(env, "ApplyFailed", "statefulsetgrid-demo")

    # Retried only every `retry_rejected_after` (0.5 s here), never in a hot loop.
    applies = env.count(verb="patch", resource="statefulsets.apps")
    await asyncio.sleep(2.0)  # a window to measure the retry rate over, not a wait for state
    retried = env.count(verb="patch", resource="statefulsets.apps") - applies
    assert retried <= 3 * (2.0 / 0.5 + 2)
    assert not controller.task.done()
    statefulset = env.get("statefulsets", "statefulsetgrid-demo-zone-0")
    assert statefulset is not None and statefulset["spec"]["serviceName"] == "servicegrid-demo-svc"


async def test_template_the_api_server_rejects_fails_only_its_units(
    ctl_env: Env, ctl_controller: RunningController
) -> None:
    env = ctl_env
    broken = copy.deepcopy(fixture("deploymentgrid-demo.yaml")["spec"]["template"])
    broken["selector"] = {"matchLabels": {"appGrid": "something-else"}}
    env.create(demo(templatePool={"broken": broken}, templates={"zone-2": "broken"}))
    condition = await reported(env, "deploymentgrids", DG, "ApplyFailed")
    assert condition["reason"] == "Invalid"
    assert condition["message"].startswith(f"zone-2: Deployment {DG}-zone-2: 422 Invalid")
    names = {d["metadata"]["name"] for d in env.list("deployments")}
    assert names == {f"{DG}-zone-0", f"{DG}-zone-1"}

    # Fixing the template clears the failure.
    env.patch("deploymentgrids", DG, {"spec": {"templates": None}})
    await env.wait_for(lambda: env.get("deployments", f"{DG}-zone-2"), what="zone-2 created")
    await env.wait_for(lambda: env.condition("deploymentgrids", DG, "ApplyFailed") is None)
