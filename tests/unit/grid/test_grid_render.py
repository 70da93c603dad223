"""Rendering children: the upstream examples' children, and properties of every render."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from servicegroup.api.models import DeploymentGrid, ServiceGrid, StatefulSetGrid, parse_grid
from servicegroup.grid import conditions as cond
from servicegroup.grid.compare import applied_hash
from servicegroup.grid.naming import ChildNameError, unit_hash
from servicegroup.grid.render import (
    RenderedChild,
    render_service,
    render_unit,
    render_units,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "upstream"
UID = "0b7c1c9e-0000-4000-8000-000000000001"


def load(name: str, *, uid: str = UID) -> dict[str, Any]:
    raw = yaml.safe_load((FIXTURES / name).read_text())
    assert isinstance(raw, dict)
    raw["metadata"]["uid"] = uid
    return raw


def owner(kind: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "superedge.io/v1",
        "kind": kind,
        "name": name,
        "uid": UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def expected_spec(template: dict[str, Any], unit: str) -> dict[str, Any]:
    spec = copy.deepcopy(template)
    spec["template"]["metadata"].pop("creationTimestamp", None)
    spec["template"]["spec"]["nodeSelector"] = {"zone": unit}
    return spec


def test_deploymentgrid_demo_children() -> None:
    raw = load("deploymentgrid-demo.yaml")
    grid = parse_grid(copy.deepcopy(raw))
    assert isinstance(grid, DeploymentGrid)
    plan = render_units(grid, ["zone-0", "zone-1", "zone-2"])
    assert plan.failures == {}
    assert [c.name for c in plan.children.values()] == [
        "deploymentgrid-demo-zone-0",
        "deploymentgrid-demo-zone-1",
        "deploymentgrid-demo-zone-2",
    ]
    child = plan.children["zone-1"]
    assert child.template_name == "default"
    obj = child.obj
    hash_value = obj["metadata"]["annotations"]["superedge.io/applied-hash"]
    assert obj == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "deploymentgrid-demo-zone-1",
            "namespace": "default",
            "labels": {
                "superedge.io/grid-selector": "deploymentgrid-demo",
                "superedge.io/grid-uniq-key": "zone",
                "superedge.io/nodeunit": "zone-1",
                "app.kubernetes.io/managed-by": "servicegroup",
            },
            "ownerReferences": [owner("DeploymentGrid", "deploymentgrid-demo")],
            "annotations": {"superedge.io/applied-hash": hash_value},
        },
        "spec": expected_spec(raw["spec"]["template"], "zone-1"),
    }
    assert hash_value == applied_hash(obj)
    # The demo's details survive: replicas, empty strategy, env, resources.
    assert obj["spec"]["replicas"] == 2
    assert obj["spec"]["strategy"] == {}
    assert obj["spec"]["template"]["metadata"] == {"labels": {"appGrid": "echo"}}
    assert len(obj["spec"]["template"]["spec"]["containers"][0]["env"]) == 4


def test_statefulsetgrid_demo_children_keep_service_name() -> None:
    raw = load("statefulsetgrid-demo.yaml")
    grid = parse_grid(raw)
    assert isinstance(grid, StatefulSetGrid)
    plan = render_units(grid, ["zone-0", "zone-1", "zone-2"])
    assert sorted(c.name for c in plan.children.values()) == [
        "statefulsetgrid-demo-zone-0",
        "statefulsetgrid-demo-zone-1",
        "statefulsetgrid-demo-zone-2",
    ]
    obj = plan.children["zone-2"].obj
    assert obj["apiVersion"] == "apps/v1"
    assert obj["kind"] == "StatefulSet"
    assert obj["spec"]["serviceName"] == "servicegrid-demo-svc"
    assert obj["spec"]["replicas"] == 3
    assert obj["spec"]["template"]["spec"]["nodeSelector"] == {"zone": "zone-2"}
    assert obj["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 10
    assert obj["metadata"]["ownerReferences"] == [owner("StatefulSetGrid", "statefulsetgrid-demo")]
    assert obj["metadata"]["labels"]["superedge.io/nodeunit"] == "zone-2"


def test_servicegrid_demo_service() -> None:
    raw = load("servicegrid-demo.yaml")
    grid = parse_grid(raw)
    assert isinstance(grid, ServiceGrid)
    svc = render_service(grid)
    hash_value = svc["metadata"]["annotations"]["superedge.io/applied-hash"]
    assert svc == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "servicegrid-demo-svc",
            "namespace": "default",
            "labels": {
                "superedge.io/grid-selector": "servicegrid-demo",
                "superedge.io/grid-uniq-key": "zone",
                "app.kubernetes.io/managed-by": "servicegroup",
            },
            "annotations": {"topologyKeys": '["zone"]', "superedge.io/applied-hash": hash_value},
            "ownerReferences": [owner("ServiceGrid", "servicegrid-demo")],
        },
        "spec": raw["spec"]["template"],
    }
    assert svc["spec"] is not grid.spec.template
    assert hash_value == applied_hash(svc)


def test_service_copies_grid_annotations_but_not_kubectls_record() -> None:
    raw = load("servicegrid-demo.yaml")
    raw["metadata"]["annotations"] = {
        "team": "edge",
        "kubectl.kubernetes.io/last-applied-configuration": "{...}",
        "topologyKeys": "overridden",
    }
    raw["spec"]["gridUniqKey"] = "superedge.io/site"
    svc = render_service(parse_grid(raw))  # type: ignore[arg-type]
    annotations = svc["metadata"]["annotations"]
    assert annotations["team"] == "edge"
    assert annotations["topologyKeys"] == '["superedge.io/site"]'
    assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations
    # A prefixed key is not a valid label value: the grid-uniq-key label is left out.
    assert "superedge.io/grid-uniq-key" not in svc["metadata"]["labels"]


def test_service_name_error_propagates() -> None:
    raw = load("servicegrid-demo.yaml")
    raw["metadata"]["name"] = "s" * 60
    with pytest.raises(ChildNameError):
        render_service(parse_grid(raw))  # type: ignore[arg-type]


def test_multicluster_canary_children_use_their_pool_templates() -> None:
    grid = parse_grid(load("deploymentgrid-multicluster.yaml"))
    assert isinstance(grid, DeploymentGrid)
    plan = render_units(grid, ["zone1", "zone2", "zone3"])
    assert plan.failures == {}
    by_unit = {
        u: (c.name, c.template_name, c.obj["spec"]["replicas"]) for u, c in plan.children.items()
    }
    assert by_unit == {
        "zone1": ("deploymentgrid-demo-zone1", "test1", 2),
        "zone2": ("deploymentgrid-demo-zone2", "test2", 3),
        "zone3": ("deploymentgrid-demo-zone3", "test1", 2),  # defaultTemplateName
    }
    zone2 = plan.children["zone2"].obj
    # Pool templates keep their pod template metadata (SPEC B13).
    assert zone2["spec"]["template"]["metadata"] == {"labels": {"appGrid": "echo"}}
    assert zone2["metadata"]["labels"]["superedge.io/fed"] == "yes"


def test_failures_are_per_unit() -> None:
    raw = load("deploymentgrid-multicluster.yaml")
    raw["spec"]["templates"]["zone2"] = "test3"
    raw["spec"]["templatePool"]["test1"]["template"]["spec"]["nodeSelector"] = "bad"
    grid = parse_grid(raw)
    assert isinstance(grid, DeploymentGrid)
    plan = render_units(grid, ["zone1", "zone2", "zone3", "Zone_X"])
    assert plan.failures["zone2"].type == cond.TEMPLATE_NOT_FOUND
    assert plan.failures["zone2"].reason == cond.MISSING_TEMPLATE
    assert plan.failures["zone1"].type == cond.INVALID_SPEC
    assert plan.failures["zone1"].reason == cond.INVALID_TEMPLATE
    assert "nodeSelector" in plan.failures["zone1"].message
    assert set(plan.children) == set()  # zone3 and Zone_X use test1 as well
    raw["spec"]["defaultTemplateName"] = "test2"
    plan = render_units(parse_grid(raw), ["zone1", "zone2", "zone3", "Zone_X"])  # type: ignore[arg-type]
    assert set(plan.children) == {"zone3", "Zone_X"}
    assert plan.children["Zone_X"].name == f"deploymentgrid-demo-zone-x-{unit_hash('Zone_X')}"
    assert plan.children["Zone_X"].obj["metadata"]["labels"]["superedge.io/nodeunit"] == "Zone_X"
    assert set(plan.failures) == {"zone1", "zone2"}


def test_grid_name_too_long_fails_units_that_need_a_hashed_name() -> None:
    raw = load("deploymentgrid-demo.yaml")
    raw["metadata"]["name"] = "g" * 60
    plan = render_units(parse_grid(raw), ["a", "Zone_B"])  # type: ignore[arg-type]
    assert set(plan.children) == {"a"}
    assert plan.failures["Zone_B"].type == cond.INVALID_SPEC
    assert plan.failures["Zone_B"].reason == cond.INVALID_NAME


def test_template_without_replicas_stays_without_replicas() -> None:
    raw = load("deploymentgrid-demo.yaml")
    del raw["spec"]["template"]["replicas"]
    child = render_unit(parse_grid(raw), "zone-0", name="x")  # type: ignore[arg-type]
    assert isinstance(child, RenderedChild)
    assert "replicas" not in child.obj["spec"]


def test_minimal_template_gets_a_pod_spec_for_the_node_selector() -> None:
    grid = DeploymentGrid.model_validate(
        {
            "metadata": {"name": "g", "namespace": "n"},
            "spec": {"gridUniqKey": "k", "template": {"replicas": 1}},
        }
    )
    child = render_unit(grid, "u", name="g-u")
    assert isinstance(child, RenderedChild)
    assert child.obj["spec"] == {"replicas": 1, "template": {"spec": {"nodeSelector": {"k": "u"}}}}


# -- properties -------------------------------------------------------------------------

label_values = st.from_regex(r"\A[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?\Z")
selectors = st.dictionaries(label_values, label_values, max_size=4)


def containers(value: Any) -> Iterator[int]:
    """ids of every dict and list inside `value`."""
    if isinstance(value, dict):
        yield id(value)
        for item in value.values():
            yield from containers(item)
    elif isinstance(value, list):
        yield id(value)
        for item in value:
            yield from containers(item)


@settings(max_examples=60, deadline=None)
@given(
    own_selector=selectors,
    units=st.lists(label_values, min_size=1, max_size=6, unique=True),
    key=label_values,
    with_replicas=st.booleans(),
)
def test_render_properties(
    own_selector: dict[str, str], units: list[str], key: str, with_replicas: bool
) -> None:
    template: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "x"}},
        "template": {
            "metadata": {"labels": {"app": "x"}, "creationTimestamp": None},
            "spec": {"nodeSelector": own_selector, "containers": [{"name": "c", "image": "i"}]},
        },
    }
    if with_replicas:
        template["replicas"] = 2
    raw = {
        "kind": "DeploymentGrid",
        "metadata": {"name": "g", "namespace": "ns", "uid": UID},
        "spec": {"gridUniqKey": key, "template": template, "templatePool": {"p": template}},
    }
    pristine = copy.deepcopy(raw)
    grid = parse_grid(raw)
    assert isinstance(grid, DeploymentGrid)
    plan = render_units(grid, units)
    again = render_units(grid, units)
    assert not plan.failures
    assert raw == pristine, "rendering must not change the grid"
    seen: set[int] = set(containers(grid.spec.template))
    for unit in units:
        obj = plan.children[unit].obj
        # nodeSelector: the template's own keys kept, the unit's key set to the unit.
        assert obj["spec"]["template"]["spec"]["nodeSelector"] == {**own_selector, key: unit}
        assert ("replicas" in obj["spec"]) is with_replicas
        assert obj["metadata"]["labels"]["superedge.io/nodeunit"] == unit
        assert obj["metadata"]["annotations"]["superedge.io/applied-hash"] == applied_hash(obj)
        assert again.children[unit].obj == obj  # deterministic
        # Nothing shared with the grid or another unit's child (upstream issue 301).
        ids = set(containers(obj))
        assert not ids & seen
        seen |= ids
    # Mutating one child cannot leak into another.
    first, *rest = units
    plan.children[first].obj["spec"]["template"]["spec"]["nodeSelector"]["leak"] = "x"
    for unit in rest:
        assert "leak" not in plan.children[unit].obj["spec"]["template"]["spec"]["nodeSelector"]
