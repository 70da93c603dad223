"""Bad input gets a condition and a Warning Event, never a crash or a hot loop (SPEC B5-B8).

Inputs the CRD's CEL rules reject run as `lenient` scenarios: on a cluster whose grid CRDs
lack those rules (kubesim's `ctl_lenient_cluster`), so the controller's own validation is
what is tested. A real cluster keeps its CRDs: there they skip.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from ctl_scenarios.cluster import CtlCluster, scenario

DG = "deploymentgrid-demo"
SSG = "statefulsetgrid-demo"
# spec.gridUniqKey -> the message expected in the InvalidSpec condition
INVALID_KEYS = {
    "empty": ("", "spec.gridUniqKey: Required value"),
    "not-a-key": ("not a key!", "spec.gridUniqKey: Invalid value"),
}


async def warnings(c: CtlCluster, reason: str, name: str = DG) -> list[dict[str, Any]]:
    return [e for e in await c.events(reason=reason, name=name) if e["type"] == "Warning"]


async def reported(
    c: CtlCluster, plural: str, name: str, ctype: str, reason: str | None = None
) -> dict[str, Any]:
    """Wait for condition `ctype` (True) and its Warning Event, then for the writes to stop."""
    condition: dict[str, Any] = await c.wait_for(
        lambda: c.condition(plural, name, ctype), what=f"{ctype} on {name}"
    )
    assert condition["status"] == "True"
    await c.wait_for(lambda: warnings(c, reason or ctype, name), what=f"{ctype} Event")
    # A hot loop would never let this settle.
    await c.settled(quiet=1.0, timeout=15)
    return condition


def lenient_inputs(c: CtlCluster) -> dict[str, dict[str, Any]]:
    """What the lenient scenarios send: grids the CRD's own rules refuse."""
    too_long = c.grid("deploymentgrid-demo.yaml")
    too_long["metadata"]["name"] = "g" * 50 + "-toolong"
    inputs = {
        f"gridUniqKey {key!r}": c.grid("deploymentgrid-demo.yaml", gridUniqKey=key)
        for key, _ in INVALID_KEYS.values()
    }
    inputs["name too long"] = too_long
    inputs["missing pool entry"] = c.grid(
        "deploymentgrid-demo.yaml", templates={c.zones[0]: "nope"}
    )
    inputs["missing default template"] = c.grid(
        "deploymentgrid-demo.yaml", defaultTemplateName="gone", templates={c.zones[0]: "default"}
    )
    return inputs


@scenario()
async def the_crd_refuses_what_the_lenient_scenarios_send(c: CtlCluster) -> None:
    """With the CRDs' CEL rules (a real API server's CEL, or kubesim's), the API server says
    422 Invalid to every input the lenient scenarios need a laxer CRD for."""
    for what, grid in lenient_inputs(c).items():
        code, reason = await c.try_create(grid)
        assert (code, reason) == (422, "Invalid"), f"{what}: {code} {reason}"
    assert await c.items("deploymentgrids") == []


@scenario(
    lenient=True,
    cases={case: {"key": key, "message": message} for case, (key, message) in INVALID_KEYS.items()},
)
async def invalid_grid_uniq_key(c: CtlCluster, key: str, message: str) -> None:
    controller = await c.start_controller()
    await c.create(c.grid("deploymentgrid-demo.yaml", gridUniqKey=key))
    condition = await reported(c, "deploymentgrids", DG, "InvalidSpec")
    assert message in condition["message"]
    ready = await c.condition("deploymentgrids", DG, "Ready")
    assert ready is not None and ready["reason"] == "InvalidSpec"
    assert await c.items("deployments") == []
    assert not controller.task.done()


@scenario(lenient=True)
async def grid_name_too_long_for_its_children(c: CtlCluster) -> None:
    await c.start_controller()
    name = "g" * 50 + "-toolong"
    grid = c.grid("deploymentgrid-demo.yaml")
    grid["metadata"]["name"] = name
    await c.create(grid)
    condition = await reported(c, "deploymentgrids", name, "InvalidSpec")
    assert "metadata.name: Too long" in condition["message"]
    assert await c.items("deployments") == []


@scenario()
async def unit_values_with_upper_case_underscore_and_dot(c: CtlCluster) -> None:
    await c.start_controller()
    await c.add_unit("Zone_A.1", node="node-odd")
    await c.create(c.grid("deploymentgrid-demo.yaml"))

    async def odd_child() -> dict[str, Any] | None:
        for child in await c.items("deployments", label_selector="superedge.io/nodeunit=Zone_A.1"):
            return child
        return None

    child = await c.wait_for(odd_child, what="child of unit Zone_A.1")
    name = child["metadata"]["name"]
    assert name.startswith(f"{DG}-zone-a-1-") and len(name) == len(f"{DG}-zone-a-1-") + 8
    assert child["spec"]["template"]["spec"]["nodeSelector"] == {c.key: "Zone_A.1"}
    for zone in c.zones:  # valid values keep the exact upstream names
        await c.wait_for(lambda z=zone: c.get("deployments", f"{DG}-{z}"))
    await c.settled()
    assert await c.condition("deploymentgrids", DG, "InvalidSpec") is None


@scenario(lenient=True)
async def missing_pool_entry_fails_only_its_unit(c: CtlCluster) -> None:
    c.require_units(2)
    broken = c.zones[1]  # kubesim: zone-1
    await c.start_controller()
    await c.create(c.grid("deploymentgrid-demo.yaml", templates={broken: "nope"}))
    condition = await reported(c, "deploymentgrids", DG, "TemplateNotFound")
    assert condition["message"].startswith(f"{broken}: spec.templates[{broken}]: Not found")
    assert await c.names("deployments") == {f"{DG}-{z}" for z in c.zones if z != broken}


@scenario(lenient=True)
async def missing_default_template(c: CtlCluster) -> None:
    first = c.zones[0]
    await c.start_controller()
    await c.create(
        c.grid("deploymentgrid-demo.yaml", defaultTemplateName="gone", templates={first: "default"})
    )
    condition = await reported(c, "deploymentgrids", DG, "TemplateNotFound")
    assert "spec.defaultTemplateName" in condition["message"]
    assert await c.names("deployments") == {f"{DG}-{first}"}


@scenario()
async def foreign_deployment_of_the_same_name_is_never_modified(c: CtlCluster) -> None:
    c.require_units(2)
    ours, taken = c.zones[0], c.zones[1]  # kubesim: zone-0, zone-1
    await c.start_controller()
    foreign = copy.deepcopy(c.grid("deploymentgrid-demo.yaml")["spec"]["template"])
    foreign["replicas"] = 1
    existing = await c.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"{DG}-{taken}", "namespace": c.namespace},
            "spec": foreign,
        }
    )
    await c.create(c.grid("deploymentgrid-demo.yaml"))
    condition = await reported(c, "deploymentgrids", DG, "ChildConflict")
    assert condition["reason"] == "NotControlledByGrid"
    assert condition["message"].startswith(f"{taken}: Deployment {DG}-{taken} exists")
    now = await c.get("deployments", f"{DG}-{taken}")
    assert now is not None
    assert now["metadata"]["generation"] == existing["metadata"]["generation"]
    assert "ownerReferences" not in now["metadata"]
    managers = {m["manager"] for m in now["metadata"].get("managedFields") or ()}
    assert "servicegroup-controller" not in managers
    assert await c.get("deployments", f"{DG}-{ours}") is not None

    # The foreign object is deleted: the grid takes the name at once.
    await c.delete("deployments", f"{DG}-{taken}")

    async def ours_now() -> Any:
        obj = await c.get("deployments", f"{DG}-{taken}")
        return (obj or {}).get("metadata", {}).get("ownerReferences")

    await c.wait_for(ours_now, what="our child created")

    async def conflict_cleared() -> bool:
        return await c.condition("deploymentgrids", DG, "ChildConflict") is None

    await c.wait_for(conflict_cleared)


@scenario()
async def statefulset_immutable_field_change(c: CtlCluster) -> None:
    controller = await c.start_controller(retry_rejected_after=0.5)
    await c.create(c.grid("statefulsetgrid-demo.yaml"))
    for zone in c.zones:
        await c.wait_for(lambda z=zone: c.get("statefulsets", f"{SSG}-{z}"))
    await c.settled()

    await c.patch("statefulsetgrids", SSG, {"spec": {"template": {"serviceName": "other"}}})
    condition = await c.wait_for(
        lambda: c.condition("statefulsetgrids", SSG, "ApplyFailed"), what="ApplyFailed"
    )
    assert condition["reason"] == "Invalid"
    assert "Forbidden" in condition["message"] or "forbidden" in condition["message"]
    assert await warnings(c, "ApplyFailed", SSG)

    # Retried only every `retry_rejected_after` (0.5 s here), never in a hot loop.
    if c.has_request_accounting:
        applies = c.count(verb="patch", resource="statefulsets.apps")
        await asyncio.sleep(2.0)  # a window to measure the retry rate over, not a wait for state
        retried = c.count(verb="patch", resource="statefulsets.apps") - applies
        assert retried <= 3 * (2.0 / 0.5 + 2)
    assert not controller.task.done()
    statefulset = await c.get("statefulsets", f"{SSG}-{c.zones[0]}")
    assert statefulset is not None and statefulset["spec"]["serviceName"] == "servicegrid-demo-svc"


@scenario()
async def template_the_api_server_rejects_fails_only_its_units(c: CtlCluster) -> None:
    c.require_units(2)
    broken_unit = c.zones[-1]  # kubesim: zone-2
    await c.start_controller()
    broken = copy.deepcopy(c.grid("deploymentgrid-demo.yaml")["spec"]["template"])
    broken["selector"] = {"matchLabels": {"appGrid": "something-else"}}
    await c.create(
        c.grid(
            "deploymentgrid-demo.yaml",
            templatePool={"broken": broken},
            templates={broken_unit: "broken"},
        )
    )
    condition = await reported(c, "deploymentgrids", DG, "ApplyFailed")
    assert condition["reason"] == "Invalid"
    assert condition["message"].startswith(
        f"{broken_unit}: Deployment {DG}-{broken_unit}: 422 Invalid"
    )
    assert await c.names("deployments") == {f"{DG}-{z}" for z in c.zones if z != broken_unit}

    # Fixing the template clears the failure.
    await c.patch("deploymentgrids", DG, {"spec": {"templates": None}})
    await c.wait_for(lambda: c.get("deployments", f"{DG}-{broken_unit}"), what="fixed unit")

    async def failure_cleared() -> bool:
        return await c.condition("deploymentgrids", DG, "ApplyFailed") is None

    await c.wait_for(failure_cleared)
